package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/tensor"
)

// Set is a model's tensors across one or several safetensors files.
type Set struct {
	files []*File
	where map[string]*File
}

// ErrPickle is returned for folders that only have pickle weights.
var ErrPickle = errors.New("llmlab never loads pickle weights (.bin, .pt, .pth): they can run arbitrary code; convert the model to safetensors first (for example with transformers: model.save_pretrained(dir, safe_serialization=True))")

// OpenDir opens dir/model.safetensors or the shards listed in
// dir/model.safetensors.index.json.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, "model.safetensors")
	index := filepath.Join(dir, "model.safetensors.index.json")
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		return newSet([]*File{f})
	}
	data, err := os.ReadFile(index)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			for _, pat := range []string{"*.bin", "*.pt", "*.pth"} {
				if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
					return nil, fmt.Errorf("%s: %w", m[0], ErrPickle)
				}
			}
			return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", dir)
		}
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	shards := map[string]*File{}
	var files []*File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	var names []string
	for _, s := range idx.WeightMap {
		if _, ok := shards[s]; !ok {
			names = append(names, s)
			shards[s] = nil
		}
	}
	sort.Strings(names)
	for _, s := range names {
		if strings.ContainsAny(s, `/\`) || s == ".." {
			closeAll()
			return nil, fmt.Errorf("%s: shard name %q must be a file in the folder", index, s)
		}
		f, err := Open(filepath.Join(dir, s))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s lists shard %s: %w", index, s, err)
		}
		shards[s] = f
		files = append(files, f)
	}
	set, err := newSet(files)
	if err != nil {
		return nil, err
	}
	for t, s := range idx.WeightMap {
		if set.where[t] != shards[s] {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %q is not in %s as the index says", index, t, s)
		}
	}
	return set, nil
}

func newSet(files []*File) (*Set, error) {
	s := &Set{files: files, where: map[string]*File{}}
	for _, f := range files {
		for _, n := range f.Names() {
			if g, dup := s.where[n]; dup {
				s.Close()
				return nil, fmt.Errorf("tensor %q is in both %s and %s", n, g.path, f.path)
			}
			s.where[n] = f
		}
	}
	return s, nil
}

// Names lists all tensors, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.where))
	for n := range s.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Info returns a tensor's type and shape.
func (s *Set) Info(name string) (tensor.DType, tensor.Shape, bool) {
	f, ok := s.where[name]
	if !ok {
		return 0, nil, false
	}
	return f.Info(name)
}

// Tensor returns a tensor (valid until Close).
func (s *Set) Tensor(name string) (*tensor.Tensor, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return f.Tensor(name)
}

// Close releases every file.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
