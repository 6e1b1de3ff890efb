// Package locale gives the desktop app a locale Fyne can read. Fyne's lang
// package reads the user's language in its init (through go-locale: the
// first of LC_ALL, LC_MESSAGES and LANG, then LANGUAGE) and logs three lines
// of "Fyne error: Error parsing user locale C" when that is C.UTF-8 or
// POSIX.UTF-8, the usual setting of containers and CI machines. Under such a
// locale this package sets LANGUAGE=en, which go-locale reads next and
// gettext ignores under C, so Fyne falls back to English quietly.
//
// It must run before Fyne's lang initialises, and it does: Go initialises
// packages in import-path order among those whose imports are done, this
// package imports only syscall, and "llmlab/app/gui/locale" sorts before
// "os", which Fyne's lang needs. Any package that imports Fyne's widgets
// should import this one (app/gui does).
package locale

import "syscall"

func init() { Fix() }

// Fix sets LANGUAGE=en when the locale in effect is C or POSIX with an
// encoding or modifier (C.UTF-8, POSIX.utf8) and LANGUAGE is unset. It
// reports whether it did. Plain C, POSIX or no locale at all need nothing:
// go-locale reads them as "no preference".
func Fix() bool {
	if v, _ := syscall.Getenv("LANGUAGE"); v != "" {
		return false
	}
	loc := ""
	for _, k := range [...]string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v, _ := syscall.Getenv(k); v != "" {
			loc = v
			break
		}
	}
	if !isC(loc) {
		return false
	}
	return syscall.Setenv("LANGUAGE", "en") == nil
}

// isC reports whether loc is the C or POSIX locale with something after
// it: "C.UTF-8", "POSIX@euro" (go-locale would take "C" or "POSIX" for a
// language name).
func isC(loc string) bool {
	for _, c := range [...]string{"C", "POSIX"} {
		if len(loc) > len(c) && loc[:len(c)] == c && (loc[len(c)] == '.' || loc[len(c)] == '@' || loc[len(c)] == '_' || loc[len(c)] == '-') {
			return true
		}
	}
	return false
}
