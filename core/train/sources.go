package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// LM is the next-token objective of pretraining and SFT: mean
// cross-entropy over the batch's labels (ignored labels carry no loss).
type LM struct {
	M *model.Transformer
}

// Loss implements Objective.
func (o LM) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, Metrics, error) {
	in := model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg}
	loss, _, err := o.M.Loss(t, in, b.Labels)
	if err != nil {
		return nil, nil, err
	}
	return loss, nil, nil
}

// SamplerSource draws pretraining windows from token shards.
type SamplerSource struct {
	S     *data.Sampler
	batch data.Batch
}

// Next implements BatchSource.
func (s *SamplerSource) Next() (data.Batch, error) {
	s.S.Next(&s.batch)
	return s.batch, nil
}

// State implements BatchSource.
func (s *SamplerSource) State() ([]byte, error) { return json.Marshal(s.S.Cursor()) }

// Restore implements BatchSource.
func (s *SamplerSource) Restore(b []byte) error {
	var c data.Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	return s.S.SetCursor(c)
}

// ExampleSource serves SFT examples: each epoch in a seeded random order,
// Rows examples per batch, padded to the longest in the batch.
type ExampleSource struct {
	Examples []data.Example
	Rows     int
	Seed     uint64
	Pad      int32
	Pack     bool // pack several examples per row (rows of Ctx tokens)
	Ctx      int

	epoch, index int
	perm         []int
}

func (s *ExampleSource) prepare() {
	if s.perm != nil {
		return
	}
	r := rand.New(rand.NewPCG(s.Seed, uint64(s.epoch)))
	s.perm = r.Perm(len(s.Examples))
}

// Next implements BatchSource.
func (s *ExampleSource) Next() (data.Batch, error) {
	if len(s.Examples) == 0 {
		return data.Batch{}, fmt.Errorf("train: no examples")
	}
	want := s.Rows
	if s.Pack {
		want = s.Rows * 4 // candidates to pack into Rows rows
	}
	var exs []data.Example
	longest := 0
	for len(exs) < want {
		s.prepare()
		if s.index >= len(s.perm) {
			s.epoch++
			s.index = 0
			s.perm = nil
			continue
		}
		e := s.Examples[s.perm[s.index]]
		s.index++
		exs = append(exs, e)
		longest = max(longest, len(e.IDs))
	}
	if s.Pack {
		b, err := data.Pack(exs, s.Ctx, s.Pad)
		if err != nil {
			return b, err
		}
		if b.B > s.Rows {
			b = b.Rows(0, s.Rows)
		}
		return b, nil
	}
	return data.Collate(exs, longest, s.Pad)
}

type exState struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

// State implements BatchSource.
func (s *ExampleSource) State() ([]byte, error) { return json.Marshal(exState{s.epoch, s.index}) }

// Restore implements BatchSource.
func (s *ExampleSource) Restore(b []byte) error {
	var st exState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	s.epoch, s.index, s.perm = st.Epoch, st.Index, nil
	return nil
}

// Batches turns fixed batches into an EvalSource.
func Batches(bs []data.Batch) EvalSource {
	return func() func(func(data.Batch) bool) {
		return func(yield func(data.Batch) bool) {
			for _, b := range bs {
				if !yield(b) {
					return
				}
			}
		}
	}
}

// ModelWeights checkpoints a whole model as an HF folder.
type ModelWeights struct{ M *model.Transformer }

// SaveWeights implements Weights.
func (w ModelWeights) SaveWeights(dir string) error { return w.M.Save(dir, model.SaveOptions{}) }

// LoadWeights implements Weights: the folder must hold the same model.
func (w ModelWeights) LoadWeights(dir string) error {
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		return err
	}
	src := m.ParamList()
	dst := w.M.ParamList()
	if len(src) != len(dst) {
		return fmt.Errorf("%s: %d parameters, the model has %d", dir, len(src), len(dst))
	}
	for i, p := range dst {
		if !p.Value.Shape.Equal(src[i].Value.Shape) || p.Name != src[i].Name {
			return fmt.Errorf("%s: parameter %s %v does not match %s %v", dir, src[i].Name, src[i].Value.Shape, p.Name, p.Value.Shape)
		}
		if p.Value.OnDevice() {
			tensor.Copy(p.Value, src[i].Value)
		} else {
			copy(p.Value.F32, src[i].Value.F32)
		}
	}
	return nil
}
