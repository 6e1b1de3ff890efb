//go:build (linux && !android) || darwin || freebsd

package blas

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/ebitengine/purego"
)

// candidates lists the library files tried by Open, best first.
func candidates() []string {
	if runtime.GOOS == "darwin" {
		return []string{"libopenblas.0.dylib", "libopenblas.dylib", "libmkl_rt.dylib", "libblis.4.dylib"}
	}
	return []string{"libopenblas.so.0", "libmkl_rt.so", "libmkl_rt.so.2", "libblis.so.4"}
}

// Open loads the first BLAS library found. The handle is never closed: a
// BLAS keeps worker threads that must outlive any unload.
func Open() (*Lib, error) {
	var why []string
	for _, name := range candidates() {
		l, err := openLib(name)
		if err == nil {
			return l, nil
		}
		why = append(why, err.Error())
	}
	return nil, fmt.Errorf("%w (%s)", ErrUnavailable, strings.Join(why, "; "))
}

func openLib(name string) (*Lib, error) {
	h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	sym, err := purego.Dlsym(h, "cblas_sgemm")
	if err != nil {
		purego.Dlclose(h)
		return nil, fmt.Errorf("%s: no cblas_sgemm: %v", name, err)
	}
	l := &Lib{name: name}
	purego.RegisterFunc(&l.sgemm, sym)
	for _, s := range []string{"openblas_set_num_threads", "MKL_Set_Num_Threads", "bli_thread_set_num_threads"} {
		if p, err := purego.Dlsym(h, s); err == nil {
			purego.RegisterFunc(&l.setThreads, p)
			break
		}
	}
	return l, nil
}
