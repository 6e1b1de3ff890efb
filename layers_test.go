package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers says which of the module's packages each layer may import
// (docs/design.md, "Layers"). A package belongs to the longest prefix
// listed; an import is allowed when it falls under one of the layer's
// entries. Test files are held to the same rules, plus testExtra.
var layers = map[string][]string{
	"core/tensor":        {"core/tensor", "core/quant"},
	"core/quant":         {},
	"core/atomicfile":    {},
	"core/chat":          {},
	"core/tokenizer":     {"core/atomicfile", "core/checkpoint"}, // GGUF files carry tokenizers
	"core":               {"core"},
	"gpu":                {"core/tensor", "gpu"},
	"gpu/gputest":        {"core", "gpu", "lora"}, // the conformance checks a backend's tests run (PEFT methods among them)
	"lora":               {"core"},
	"rlhf":               {"core", "lora"},
	"wasm":               {"core", "lora"},
	"assets":             {},
	"app":                {"app", "core", "gpu", "lora", "rlhf", "assets"},
	"tools":              {"core"},
	".":                  {"app"},
	"core/data/datatest": {"core"},
}

// testExtra adds what a layer's test files may import beyond layers.
// (an entry covers the layers below it too).
var testExtra = map[string][]string{
	"core":   {"core"},         // a core package's tests may use the rest of core
	"gpu":    {"core", "lora"}, // training and decoding through the backend
	"assets": {"core"},         // the embedded files load
}

// testAllowed reports whether a test file of layer may import dep
// beyond what layers allows.
func testAllowed(layer, dep string) bool {
	for l, list := range testExtra {
		if under(layer, l) && allowed(list, dep) {
			return true
		}
	}
	return false
}

// TestLayers parses every Go file's imports and checks them against
// layers: core never imports outward, gpu and lora build on core only,
// and nothing but the front ends imports app.
func TestLayers(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(p))
		layer := layerOf(pkg)
		if layer == "" {
			t.Errorf("%s: package %s belongs to no layer; add it to layers and docs/design.md", p, pkg)
			return nil
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(path, "llmlab/")
			if !ok {
				continue
			}
			n++
			if dep == pkg || under(dep, pkg) && strings.HasSuffix(p, "_test.go") {
				continue // a package's own subpackages serve its tests
			}
			ok = allowed(layers[layer], dep) || strings.HasSuffix(p, "_test.go") && testAllowed(layer, dep)
			if !ok {
				t.Errorf("%s imports %s: layer %q may import only %v", p, dep, layer, layers[layer])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no imports of the module's packages found")
	}
}

func layerOf(pkg string) string {
	best := ""
	for l := range layers {
		if (l == "." && pkg == ".") || under(pkg, l) {
			if len(l) > len(best) {
				best = l
			}
		}
	}
	return best
}

func allowed(list []string, dep string) bool {
	for _, a := range list {
		if under(dep, a) {
			return true
		}
	}
	return false
}

// under reports whether pkg is dir or below it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }
