// Package serve is llmlab's OpenAI-compatible HTTP API: GET /v1/models,
// POST /v1/completions and POST /v1/chat/completions, with server-sent
// events when "stream" is true. One model runs one request at a time;
// requests wait in a bounded queue and get 429 when it is full. Bodies are
// size-limited, errors are OpenAI-shaped JSON, and Shutdown drains cleanly.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Tokenizer is what the server needs of a tokenizer.
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int32
	Decode(ids []int32) string
	EOS() int32
}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatFunc renders a conversation into the prompt text, with the
// generation prompt for the assistant's reply, and returns the strings
// that end an assistant turn.
type ChatFunc func(msgs []Message) (prompt string, stops []string, err error)

// Config sets up a Server.
type Config struct {
	ModelID   string // the name clients use
	Model     *model.Transformer
	Tok       Tokenizer
	Backend   tensor.Backend
	Chat      ChatFunc // nil: chat completions answer 400
	MaxBody   int64    // bytes; 0 means 1 MiB
	QueueSize int      // waiting requests beyond the running one; 0 means 8
	MaxTokens int      // cap on max_tokens; 0 means the context length
}

// Server serves one model.
type Server struct {
	cfg   Config
	gen   *generate.Generator
	slots chan struct{} // running + queued
	run   sync.Mutex    // one generation at a time
	srv   *http.Server
	now   func() time.Time
}

// New returns a Server for c.
func New(c Config) *Server {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 8
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = c.Model.Cfg.MaxPos
	}
	return &Server{cfg: c, gen: generate.New(c.Model, c.Backend, c.Tok), slots: make(chan struct{}, c.QueueSize+1), now: time.Now}
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /v1/completions", s.completions)
	mux.HandleFunc("POST /v1/chat/completions", s.chatCompletions)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits for running ones.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	var e apiErr
	e.Error.Message, e.Error.Type = msg, typ
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": s.cfg.ModelID, "object": "model", "created": 0, "owned_by": "llmlab",
		}},
	})
}

// completionRequest holds the fields of both endpoints that we honour.
type completionRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt"`
	Messages    []Message       `json:"messages"`
	MaxTokens   *int            `json:"max_tokens"`
	MaxCompl    *int            `json:"max_completion_tokens"`
	Temperature *float64        `json:"temperature"`
	TopP        *float64        `json:"top_p"`
	TopK        *int            `json:"top_k"`
	MinP        *float64        `json:"min_p"`
	RepPenalty  *float64        `json:"repetition_penalty"`
	Seed        *uint64         `json:"seed"`
	Stop        json.RawMessage `json:"stop"`
	Stream      bool            `json:"stream"`
	N           *int            `json:"n"`
}

// decode reads and validates a request body.
func (s *Server) decode(w http.ResponseWriter, r *http.Request) (*completionRequest, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBody))
		} else {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "could not read the request body: "+err.Error())
		}
		return nil, false
	}
	var req completionRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "the body is not valid JSON: "+err.Error())
		return nil, false
	}
	if req.Model != "" && req.Model != s.cfg.ModelID {
		apiError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("the model %q does not exist (this server has %q)", req.Model, s.cfg.ModelID))
		return nil, false
	}
	if req.N != nil && *req.N != 1 {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "only n=1 is supported")
		return nil, false
	}
	return &req, true
}

func (s *Server) sampling(req *completionRequest) (generate.Sampling, int, uint64, error) {
	sm := generate.Sampling{Temperature: 1, TopP: 1}
	if req.Temperature != nil {
		sm.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		sm.TopP = *req.TopP
	}
	if req.TopK != nil {
		sm.TopK = *req.TopK
	}
	if req.MinP != nil {
		sm.MinP = *req.MinP
	}
	if req.RepPenalty != nil {
		sm.RepetitionPenalty = *req.RepPenalty
	}
	maxTok := 16
	if req.MaxTokens != nil {
		maxTok = *req.MaxTokens
	}
	if req.MaxCompl != nil {
		maxTok = *req.MaxCompl
	}
	if maxTok <= 0 || maxTok > s.cfg.MaxTokens {
		return sm, 0, 0, fmt.Errorf("max_tokens must be between 1 and %d, got %d", s.cfg.MaxTokens, maxTok)
	}
	seed := uint64(s.now().UnixNano())
	if req.Seed != nil {
		seed = *req.Seed
	}
	return sm, maxTok, seed, sm.Validate()
}

func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("stop must be a string or a list of strings")
	}
	return many, nil
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	var prompt string
	if err := json.Unmarshal(req.Prompt, &prompt); err != nil {
		var list []string
		if json.Unmarshal(req.Prompt, &list) == nil && len(list) == 1 {
			prompt = list[0]
		} else {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "prompt must be a string")
			return
		}
	}
	s.respond(w, r, req, prompt, nil, false)
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	if s.cfg.Chat == nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "this model has no chat template; use /v1/completions")
		return
	}
	if len(req.Messages) == 0 {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "messages must not be empty")
		return
	}
	prompt, stops, err := s.cfg.Chat(req.Messages)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	s.respond(w, r, req, prompt, stops, true)
}

// respond runs one generation, queued, and writes it plain or streamed.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, req *completionRequest, prompt string, extraStops []string, chat bool) {
	sm, maxTok, seed, err := s.sampling(req)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	stops, err := parseStop(req.Stop)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	stops = append(stops, extraStops...)
	ids := s.cfg.Tok.Encode(prompt, !chat)
	if eos := s.cfg.Tok.EOS(); eos >= 0 && len(ids) > 1 && ids[len(ids)-1] == eos {
		ids = ids[:len(ids)-1]
	}
	if len(ids) == 0 {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "the prompt is empty")
		return
	}
	if len(ids) >= s.cfg.Model.Cfg.MaxPos {
		apiError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("the prompt has %d tokens; the context length is %d", len(ids), s.cfg.Model.Cfg.MaxPos))
		return
	}
	// Admission: a bounded queue, never unbounded goroutines.
	select {
	case s.slots <- struct{}{}:
	default:
		apiError(w, http.StatusTooManyRequests, "rate_limit_error", "the server is busy: too many requests queued; retry later")
		return
	}
	defer func() { <-s.slots }()
	s.run.Lock()
	defer s.run.Unlock()

	id := fmt.Sprintf("cmpl-%d", s.now().UnixNano())
	created := s.now().Unix()
	gr := generate.Request{Prompts: [][]int32{ids}, MaxTokens: maxTok, Sampling: sm, Seed: seed, StopStrings: stops}
	if eos := s.cfg.Tok.EOS(); eos >= 0 {
		gr.StopIDs = []int32{eos}
	}
	object := "text_completion"
	if chat {
		object = "chat.completion"
	}
	if req.Stream {
		flusher, _ := w.(http.Flusher)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		send := func(v any) bool {
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return false
			}
			if flusher != nil {
				flusher.Flush()
			}
			return true
		}
		if chat {
			send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{"role": "assistant", "content": ""}, nil, chat))
		}
		gr.OnText = func(_ int, text string) bool {
			if r.Context().Err() != nil {
				return false
			}
			if chat {
				return send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{"content": text}, nil, chat))
			}
			return send(chunk(id, object, created, s.cfg.ModelID, text, nil, chat))
		}
		res, err := s.gen.Generate(r.Context(), gr)
		if err != nil {
			return // client went away
		}
		fin := res.Finish[0]
		if chat {
			send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{}, &fin, chat))
		} else {
			send(chunk(id, object, created, s.cfg.ModelID, "", &fin, chat))
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		if flusher != nil {
			flusher.Flush()
		}
		return
	}
	res, err := s.gen.Generate(r.Context(), gr)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	choice := map[string]any{"index": 0, "finish_reason": res.Finish[0], "logprobs": nil}
	if chat {
		choice["message"] = map[string]any{"role": "assistant", "content": res.Text[0]}
	} else {
		choice["text"] = res.Text[0]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "object": object, "created": created, "model": s.cfg.ModelID,
		"choices": []any{choice},
		"usage": map[string]int{
			"prompt_tokens": len(ids), "completion_tokens": res.Tokens, "total_tokens": len(ids) + res.Tokens,
		},
	})
}

func chunk(id, object string, created int64, modelID string, content any, finish *string, chat bool) map[string]any {
	choice := map[string]any{"index": 0, "finish_reason": finish}
	if chat {
		choice["delta"] = content
	} else {
		choice["text"] = content
		choice["logprobs"] = nil
	}
	return map[string]any{"id": id, "object": object, "created": created, "model": modelID, "choices": []any{choice}}
}
