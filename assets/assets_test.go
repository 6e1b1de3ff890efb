package assets

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"llmlab/core/data/demo"
)

// The embedded data is exactly what the generator makes for the default
// seed (the stories compared after gunzip: deflate output may change
// between Go releases, the text must not).
func TestEmbeddedDataIsGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 3 MB of stories")
	}
	want, err := demo.Files(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{
		demo.InstructTrainFile: InstructTrain(), demo.InstructEvalFile: InstructEval(),
		demo.PrefsTrainFile: PrefsTrain(), demo.PrefsEvalFile: PrefsEval(), demo.KTOTrainFile: KTOTrain(),
	}
	for name, b := range got {
		if !bytes.Equal(b, want[name]) {
			t.Errorf("embedded %s differs from the generator's output: regenerate with llmlab data gen --kind all --out assets/data --seed 1", name)
		}
	}
	zr, err := gzip.NewReader(bytes.NewReader(want[demo.StoriesFile]))
	if err != nil {
		t.Fatal(err)
	}
	wantStories, _ := io.ReadAll(zr)
	stories, err := Stories()
	if err != nil {
		t.Fatal(err)
	}
	if stories != string(wantStories) {
		t.Error("embedded stories differ from the generator's output")
	}
	if len(stories) < 3<<20 {
		t.Errorf("stories %d bytes, want ≥ 3 MiB", len(stories))
	}
}
