package data

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// TextProgress returns a CorpusOpts.Progress that draws a one-line bar on
// w (a terminal's stderr), redrawn at most every interval and always at
// the end:
//
//	encoding [##########..........]  50%  1.5/3.0 MB
func TextProgress(w io.Writer, label string, interval time.Duration) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if done < total && now.Sub(last) < interval {
			return
		}
		last = now
		frac := 1.0
		if total > 0 && done < total {
			// done counts text bytes and total file bytes: a gzipped
			// file's text runs past its size.
			frac = max(float64(done)/float64(total), 0)
		}
		n := int(frac * 20)
		fmt.Fprintf(w, "\r%s [%s%s] %3.0f%%  %.1f/%.1f MB", label, strings.Repeat("#", n), strings.Repeat(".", 20-n), 100*frac, float64(done)/1e6, float64(total)/1e6)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}
