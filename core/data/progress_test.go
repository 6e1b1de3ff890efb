package data

import (
	"bytes"
	"strings"
	"testing"
)

// TestTextProgressPastTotal: the bar is drawn for any done/total, including text
// bytes past the size of a compressed file.
func TestTextProgressPastTotal(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[....................]   0%"},
		{50, 100, "[##########..........]  50%"},
		{100, 100, "[####################] 100%"},
		{350, 100, "[####################] 100%"}, // gzip: text longer than the file
		{5, 0, "[####################] 100%"},
	} {
		var b bytes.Buffer
		TextProgress(&b, "encoding", 0)(c.done, c.total)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("TextProgress(%d, %d) drew %q, want %q in it", c.done, c.total, b.String(), c.want)
		}
	}
}
