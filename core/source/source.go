// Package source resolves what --model names into something the loaders
// open: an HF folder, a GGUF file, or a model of ollama's local store
// (ollama:NAME[:TAG], whose manifest names a GGUF blob and, in further
// layers, a chat template, a system prompt and default parameters). It
// also lists the models it can find, for `llmlab models`. model.Load and
// tokenizer.Load take the resolved Path, whatever its kind.
package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"llmlab/core/checkpoint"
)

// Kind is what a source is.
type Kind int

const (
	Folder Kind = iota // an HF folder
	GGUF               // a .gguf file
	Ollama             // a model in ollama's store (a GGUF blob)
)

func (k Kind) String() string {
	switch k {
	case GGUF:
		return "gguf"
	case Ollama:
		return "ollama"
	}
	return "folder"
}

// Source is a resolved --model.
type Source struct {
	Kind Kind
	Arg  string // as given
	Path string // the folder or GGUF file to load
	// Data is the GGUF image when the file was handed over in memory
	// (FromBytes: the browser build, which has no file system); Path is
	// then empty.
	Data []byte
	Name string // for listings and exports
	// Ollama's defaults, from the manifest's layers (empty for other kinds).
	Template string         // Go-template chat template
	System   string         // default system prompt
	Params   map[string]any // default parameters (temperature, stop, ...)
}

// OllamaDir is ollama's model store: $OLLAMA_MODELS, else ~/.ollama/models.
func OllamaDir() string {
	if d := os.Getenv("OLLAMA_MODELS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ollama", "models")
}

// Resolve maps arg (a folder, a GGUF file or ollama:NAME[:TAG]) to a
// Source; ollamaDir is the store ollama: names are looked up in.
func Resolve(arg, ollamaDir string) (Source, error) {
	if name, ok := strings.CutPrefix(arg, "ollama:"); ok {
		return resolveOllama(name, ollamaDir)
	}
	st, err := os.Stat(arg)
	if err != nil {
		return Source{}, err
	}
	s := Source{Arg: arg, Path: arg, Name: filepath.Base(filepath.Clean(arg))}
	switch {
	case st.IsDir():
		s.Kind = Folder
	case checkpoint.IsGGUF(arg):
		s.Kind = GGUF
		s.Name = strings.TrimSuffix(s.Name, filepath.Ext(s.Name))
	default:
		return Source{}, errors.New("not a model folder or a GGUF file")
	}
	return s, nil
}

// ollama's layer media types.
const (
	mediaModel    = "application/vnd.ollama.image.model"
	mediaTemplate = "application/vnd.ollama.image.template"
	mediaSystem   = "application/vnd.ollama.image.system"
	mediaParams   = "application/vnd.ollama.image.params"
	ollamaHost    = "registry.ollama.ai"
	maxLayerBytes = 1 << 20 // template, system and params layers are small
)

type manifest struct {
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"layers"`
}

var (
	digestRe  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	nameSegRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// manifestPath turns NAME[:TAG] into the manifest's path: library/NAME for
// a bare name, NAMESPACE/NAME, or HOST/NAMESPACE/NAME; the tag defaults
// to latest.
func manifestPath(dir, ref string) (string, error) {
	name, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	parts := strings.Split(name, "/")
	switch len(parts) {
	case 1:
		parts = []string{ollamaHost, "library", parts[0]}
	case 2:
		parts = []string{ollamaHost, parts[0], parts[1]}
	case 3:
	default:
		return "", fmt.Errorf("ollama model name %q has too many parts (want [HOST/][NAMESPACE/]NAME[:TAG])", ref)
	}
	for _, p := range append(parts, tag) {
		if !nameSegRe.MatchString(p) {
			return "", fmt.Errorf("ollama model name %q: %q is not a valid name part", ref, p)
		}
	}
	return filepath.Join(append([]string{dir, "manifests"}, append(parts, tag)...)...), nil
}

// blobPath is where ollama keeps a layer, checked against the manifest's size.
func blobPath(dir, digest string, size int64) (string, error) {
	if !digestRe.MatchString(digest) {
		return "", fmt.Errorf("layer digest %q is not sha256:<64 hex digits>", digest)
	}
	p := filepath.Join(dir, "blobs", strings.Replace(digest, ":", "-", 1))
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.Size() != size {
		return "", fmt.Errorf("%s: %d bytes, the manifest says %d", p, st.Size(), size)
	}
	return p, nil
}

func resolveOllama(ref, dir string) (Source, error) {
	if dir == "" {
		return Source{}, errors.New("no ollama store (set OLLAMA_MODELS)")
	}
	mp, err := manifestPath(dir, ref)
	if err != nil {
		return Source{}, err
	}
	data, err := os.ReadFile(mp)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Source{}, fmt.Errorf("ollama model %q is not in %s (no %s)", ref, dir, mp)
		}
		return Source{}, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Source{}, fmt.Errorf("%s: %w", mp, err)
	}
	s := Source{Kind: Ollama, Arg: "ollama:" + ref, Name: ref}
	for _, l := range m.Layers {
		switch l.MediaType {
		case mediaModel:
			if s.Path != "" {
				return Source{}, fmt.Errorf("%s: more than one model layer (projectors and split models are not read)", mp)
			}
			if s.Path, err = blobPath(dir, l.Digest, l.Size); err != nil {
				return Source{}, fmt.Errorf("%s: model layer: %w", mp, err)
			}
			if !checkpoint.IsGGUF(s.Path) {
				return Source{}, fmt.Errorf("%s: the model layer %s is not a GGUF file", mp, s.Path)
			}
		case mediaTemplate, mediaSystem, mediaParams:
			if l.Size > maxLayerBytes {
				return Source{}, fmt.Errorf("%s: %s layer of %d bytes", mp, l.MediaType, l.Size)
			}
			p, err := blobPath(dir, l.Digest, l.Size)
			if err != nil {
				return Source{}, fmt.Errorf("%s: %s layer: %w", mp, l.MediaType, err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return Source{}, err
			}
			switch l.MediaType {
			case mediaTemplate:
				s.Template = string(b)
			case mediaSystem:
				s.System = string(b)
			default:
				if err := json.Unmarshal(b, &s.Params); err != nil {
					return Source{}, fmt.Errorf("%s: params layer: %w", mp, err)
				}
			}
		}
	}
	if s.Path == "" {
		return Source{}, fmt.Errorf("%s: no layer of type %s", mp, mediaModel)
	}
	return s, nil
}

// Entry is one model a listing found.
type Entry struct {
	Ref   string // what --model takes
	Kind  Kind
	Path  string
	Size  int64  // bytes of weights
	Arch  string // architecture ("llama")
	Type  string // weight type: file type of a GGUF ("Q4_K_M"), torch_dtype of a folder
	Error string // why it cannot be opened, if it cannot
}

// List finds the models in ollama's store and in each folder of dirs
// (HF folders and .gguf files directly inside it).
func List(ollamaDir string, dirs ...string) []Entry {
	var out []Entry
	if ollamaDir != "" {
		root := filepath.Join(ollamaDir, "manifests")
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if len(parts) != 4 {
				return nil
			}
			ref := parts[1] + "/" + parts[2] + ":" + parts[3]
			if parts[0] != ollamaHost {
				ref = parts[0] + "/" + ref
			} else if parts[1] == "library" {
				ref = parts[2] + ":" + parts[3]
			}
			e := Entry{Ref: "ollama:" + ref, Kind: Ollama}
			if s, err := resolveOllama(ref, ollamaDir); err != nil {
				e.Error = err.Error()
			} else {
				e.Path = s.Path
				describeGGUF(&e)
			}
			out = append(out, e)
			return nil
		})
	}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, d := range ents {
			p := filepath.Join(dir, d.Name())
			switch {
			case d.IsDir():
				if _, err := os.Stat(filepath.Join(p, "config.json")); err != nil {
					continue
				}
				e := Entry{Ref: p, Kind: Folder, Path: p}
				describeFolder(&e)
				out = append(out, e)
			case strings.HasSuffix(d.Name(), ".gguf") && checkpoint.IsGGUF(p):
				if strings.HasSuffix(d.Name(), ".adapter.gguf") {
					continue
				}
				e := Entry{Ref: p, Kind: GGUF, Path: p}
				describeGGUF(&e)
				out = append(out, e)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

func describeGGUF(e *Entry) {
	g, err := checkpoint.OpenGGUF(e.Path)
	if err != nil {
		e.Error = err.Error()
		return
	}
	defer g.Close()
	e.Size = g.FileSize()
	e.Arch, _, e.Type = g.Describe()
	if typ, _ := g.String("general.type"); typ == "adapter" {
		e.Error = "a LoRA adapter, not a model"
	}
}

func describeFolder(e *Entry) {
	var cfg struct {
		ModelType  string `json:"model_type"`
		TorchDType string `json:"torch_dtype"`
	}
	if b, err := os.ReadFile(filepath.Join(e.Path, "config.json")); err == nil {
		json.Unmarshal(b, &cfg)
	}
	e.Arch, e.Type = cfg.ModelType, cfg.TorchDType
	files, _ := filepath.Glob(filepath.Join(e.Path, "*.safetensors"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			e.Size += st.Size()
		}
	}
	if len(files) == 0 {
		e.Error = "no safetensors weights"
	}
}
