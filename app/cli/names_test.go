package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestMessagesNameTheModelAsGiven: chat greets with the model as the user
// named it ("demo", a folder), never with the cache folder demo unpacks
// into.
func TestMessagesNameTheModelAsGiven(t *testing.T) {
	cache, err := cacheDir("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, model, want string
	}{
		{"demo", "demo", "chatting with demo (template "},
		{"folder", "", "chatting with "}, // filled in below
	} {
		t.Run(tc.name, func(t *testing.T) {
			model, want := tc.model, tc.want
			if model == "" {
				model = t.TempDir() + "/base"
				if code, msg := run(t, "init", "--preset", "tiny", "--out", model); code != 0 {
					t.Fatal(msg)
				}
				want += model + " (template "
			}
			var out, errb bytes.Buffer
			code := RunIO(context.Background(), []string{"chat", "--model", model, "--template", "chatml"}, strings.NewReader("/quit\n"), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), want) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), want)
			}
			if model == "demo" && strings.Contains(errb.String(), cache) {
				t.Errorf("stderr names the cache folder %s: %q", cache, errb.String())
			}
		})
	}
}
