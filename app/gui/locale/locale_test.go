package locale_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"fyne.io/fyne/v2/lang"

	"llmlab/app/gui/locale"
)

// childEnv makes the test binary act as a program that uses Fyne's
// translations: "fixed" as the desktop app does, "raw" with the fix undone
// after init (to show the test sees Fyne's noise when it is there).
const childEnv = "LLMLAB_LOCALE_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "fixed":
		lang.SystemLocale()
		os.Stdout.WriteString(lang.L("Cancel"))
		os.Exit(0)
	case "raw":
		os.Unsetenv("LANGUAGE")
		lang.AddTranslationsForLocale([]byte("{}"), "en") // reads the locale again
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild runs the test binary as a Fyne program under the locale
// variables in env (the others are removed).
func runChild(t *testing.T, mode string, env map[string]string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, childEnv+"="+mode)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, e.String())
	}
	return o.String(), e.String()
}

// TestNoFyneNoiseUnderCLocale: under LANG=C, C.UTF-8, POSIX.UTF-8, an unset
// locale or LC_ALL=C.UTF-8, a program with Fyne's lang package prints
// nothing on stderr and translates to English.
func TestNoFyneNoiseUnderCLocale(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"LANG=C", map[string]string{"LANG": "C"}},
		{"LANG=C.UTF-8", map[string]string{"LANG": "C.UTF-8"}},
		{"LANG=POSIX.UTF-8", map[string]string{"LANG": "POSIX.UTF-8"}},
		{"unset", nil},
		{"LC_ALL=C.UTF-8", map[string]string{"LC_ALL": "C.UTF-8", "LANG": "de_DE.UTF-8"}},
		{"LANG=en_US.UTF-8", map[string]string{"LANG": "en_US.UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut := runChild(t, "fixed", tc.env)
			if errOut != "" {
				t.Errorf("stderr is not empty:\n%s", errOut)
			}
			if out != "Cancel" {
				t.Errorf("lang.L(\"Cancel\") = %q, want the English text", out)
			}
		})
	}
	// Without the fix, Fyne complains: the check above can see it.
	if _, errOut := runChild(t, "raw", map[string]string{"LANG": "C.UTF-8"}); !strings.Contains(errOut, "Error parsing user locale C") {
		t.Errorf("without the fix, want Fyne's locale error on stderr; got %q", errOut)
	}
}

func TestFix(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"LANG": "C.UTF-8"}, true},
		{map[string]string{"LC_ALL": "POSIX.utf8"}, true},
		{map[string]string{"LANG": "C"}, false},
		{map[string]string{"LANG": "fr_FR.UTF-8"}, false},
		{map[string]string{"LANG": "C.UTF-8", "LANGUAGE": "fr"}, false},
		{map[string]string{"LC_MESSAGES": "en_GB.UTF-8", "LANG": "C.UTF-8"}, false},
	} {
		for _, k := range []string{"LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"} {
			t.Setenv(k, tc.env[k])
		}
		if got := locale.Fix(); got != tc.want {
			t.Errorf("%v: Fix() = %v, want %v", tc.env, got, tc.want)
		}
		if tc.want && os.Getenv("LANGUAGE") != "en" {
			t.Errorf("%v: LANGUAGE = %q after Fix, want en", tc.env, os.Getenv("LANGUAGE"))
		}
	}
}
