//go:build unix

package cli

import (
	"syscall"
	"time"
)

// cpuTime is the processor time this process has used (user + system),
// or 0 where it cannot be read.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
