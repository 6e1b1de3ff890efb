package source

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tokenizer"
)

// FromBytes resolves a model file handed over in memory: the browser
// build reads the file the user picked into a byte slice, having no file
// system to resolve a path in. Only GGUF images are taken (a folder is
// several files); name is the file's name, for messages.
func FromBytes(name string, data []byte) (Source, error) {
	if len(data) < 4 || string(data[:4]) != "GGUF" {
		return Source{}, fmt.Errorf("%s is not a GGUF file (it does not start with the bytes \"GGUF\")", name)
	}
	base := filepath.Base(name)
	return Source{Kind: GGUF, Arg: name, Name: strings.TrimSuffix(base, filepath.Ext(base)), Data: data}, nil
}

// Opened is a source loaded: the model, its tokenizer and the chat format
// its prompts are rendered in.
type Opened struct {
	M    *model.Transformer
	Tok  *tokenizer.Tokenizer
	Chat chat.Format
	// Arch and Type describe a GGUF file ("llama", "Q8_0"); empty for a folder.
	Arch, Type string
}

// Open loads the model, tokenizer and chat format s names. A GGUF image
// held in memory (Data) is parsed in place: with o.KeepStored its
// matrices stay views of Data, which must then outlive the model.
func (s Source) Open(o model.LoadOptions) (*Opened, error) {
	if s.Data == nil {
		m, err := model.Load(s.Path, o)
		if err != nil {
			return nil, err
		}
		tok, err := tokenizer.Load(s.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Arg, err)
		}
		op := &Opened{M: m, Tok: tok}
		if s.Kind == Folder {
			cm, err := chat.Load(s.Path)
			switch {
			case errors.Is(err, chat.ErrNoTemplate):
				op.Chat = chat.Format{Builtin: chat.Plain}
			case err != nil:
				return nil, err
			default:
				op.Chat = chat.Format{Own: cm}
			}
		} else {
			if op.Chat, err = GGUFChat(tok); err != nil {
				return nil, fmt.Errorf("%s: %w", s.Arg, err)
			}
			if g, err := checkpoint.OpenGGUF(s.Path); err == nil {
				op.Arch, _, op.Type = g.Describe()
				g.Close()
			}
		}
		return op, checkVocab(s.Arg, op)
	}
	g, err := checkpoint.ParseGGUF(s.Arg, s.Data)
	if err != nil {
		return nil, err
	}
	if typ, _ := g.String("general.type"); typ == "adapter" {
		return nil, fmt.Errorf("%s is a LoRA adapter (general.type adapter), not a model", s.Arg)
	}
	m, err := model.FromGGUFImage(g, o)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(g)
	if err != nil {
		return nil, err
	}
	op := &Opened{M: m, Tok: tok}
	op.Arch, _, op.Type = g.Describe()
	if op.Chat, err = GGUFChat(tok); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Arg, err)
	}
	return op, checkVocab(s.Arg, op)
}

func checkVocab(name string, op *Opened) error {
	if op.Tok.VocabSize() > op.M.Cfg.VocabSize {
		return fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocab_size is %d", name, op.Tok.VocabSize(), op.M.Cfg.VocabSize)
	}
	return nil
}

// GGUFChat is the chat format of a tokenizer read from a GGUF file: the
// file's tokenizer.chat_template (Jinja, rendered as transformers renders
// it) with the file's BOS and EOS tokens; the plain format when the file
// has no template.
func GGUFChat(tok *tokenizer.Tokenizer) (chat.Format, error) {
	src := tok.ChatTemplate()
	if strings.TrimSpace(src) == "" {
		return chat.Format{Builtin: chat.Plain}, nil
	}
	var sp chat.Specials
	if id := tok.BOS(); id >= 0 {
		sp.BOS = tok.Piece(id)
	}
	if id := tok.EOS(); id >= 0 {
		sp.EOS = tok.Piece(id)
	}
	if id := tok.PAD(); id >= 0 {
		sp.PAD = tok.Piece(id)
	}
	m, err := chat.Compile(src, sp)
	if err != nil {
		return chat.Format{}, err
	}
	return chat.Format{Own: m}, nil
}
