// Package serve is llmlab's OpenAI-compatible HTTP API: GET /v1/models,
// POST /v1/completions and POST /v1/chat/completions, with server-sent
// events when "stream" is true, and GET /health for load balancers.
//
// Requests decode together by continuous batching: one scheduler goroutine
// drives a generate.Batch of Parallel slots; between decode steps waiting
// requests join free slots (their prompt is prefilled while the others
// wait one step) and finished or disconnected ones leave. Each request
// keeps its own sampling, seed, stops and length, and gets the tokens it
// would get alone. Beyond Parallel running and QueueSize waiting, requests
// get 429. Handlers never block the scheduler: streamed text is handed
// over in a buffer the handler drains. With an API key every /v1 route
// needs "Authorization: Bearer KEY". Bodies are size-limited, errors are
// OpenAI-shaped JSON, and Shutdown drains cleanly.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	Parallel  int      // requests decoded together; 0 means 4
	QueueSize int      // waiting requests beyond the running ones; 0 means 8
	MaxTokens int      // cap on max_tokens; 0 means Context
	// Context is the most tokens (prompt and reply) of one request; 0
	// means the model's context length, at most 4096. Every slot holds a
	// KV cache of this length, so memory grows with Parallel × Context.
	Context int
	// APIKey, when set, is the bearer token every /v1 route requires.
	APIKey string
}

// Server serves one model.
type Server struct {
	cfg   Config
	gen   *generate.Generator
	slots chan struct{} // admission: running + queued
	// run is held by the scheduler while it joins and steps the batch.
	run sync.Mutex
	srv *http.Server
	now func() time.Time

	qmu     sync.Mutex
	queue   []*job        // admitted, waiting for a slot
	closed  bool          // Close was called: no more jobs
	wake    chan struct{} // (1) a job was queued
	quit    chan struct{} // closed to stop the scheduler
	stopped chan struct{} // closed when the scheduler has ended
	start   sync.Once
	stop    sync.Once

	running, queued atomic.Int64 // for /health
	// Counts of jobs: submitted, finished with an answer, ended because
	// the client left (tests check every job ends exactly once).
	submitted, answered, abandoned atomic.Int64
	onStep                         func() // tests: runs after every scheduler pass, under run
	keyHash                        [32]byte
}

// New returns a Server for c.
func New(c Config) *Server {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 8
	}
	if c.Context <= 0 {
		c.Context = min(c.Model.Cfg.MaxPos, 4096)
	}
	c.Context = min(c.Context, c.Model.Cfg.MaxPos)
	if c.MaxTokens <= 0 {
		c.MaxTokens = c.Context
	}
	return &Server{cfg: c, gen: generate.New(c.Model, c.Backend, c.Tok), slots: make(chan struct{}, c.Parallel+c.QueueSize),
		now: time.Now, wake: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{}),
		keyHash: sha256.Sum256([]byte(c.APIKey))}
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /v1/models", s.auth(s.models))
	mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chatCompletions))
	mux.HandleFunc("/v1/", s.auth(notFound))
	mux.HandleFunc("/", notFound)
	return mux
}

func notFound(w http.ResponseWriter, r *http.Request) {
	apiError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
}

// auth wraps h so it runs only with the right bearer token (when the
// server has a key). The comparison is of SHA-256 digests in constant
// time, so it leaks neither the key nor its length.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.APIKey == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.keyHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="llmlab"`)
			apiErrorCode(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"missing or incorrect API key: send the header \"Authorization: Bearer KEY\"")
			return
		}
		h(w, r)
	}
}

// Health is the /health answer.
type Health struct {
	Status  string `json:"status"`
	Model   string `json:"model"`
	Running int    `json:"running"`
	Queued  int    `json:"queued"`
}

// Stats reports the requests decoding and waiting now.
func (s *Server) Stats() Health {
	return Health{Status: "ok", Model: s.cfg.ModelID, Running: int(s.running.Load()), Queued: int(s.queued.Load())}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
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

// Shutdown stops accepting requests, waits for running ones, then stops
// the scheduler (cancelling whatever is left when ctx ends first).
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Shutdown(ctx)
	}
	s.Close()
	return err
}

// Close stops the scheduler: running and queued requests end as
// cancelled. Handler routes must not be called afterwards.
func (s *Server) Close() {
	s.qmu.Lock()
	s.closed = true
	s.qmu.Unlock()
	s.stop.Do(func() { close(s.quit) })
	s.start.Do(func() { close(s.stopped) }) // never started
	<-s.stopped
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
	apiErrorCode(w, status, typ, "", msg)
}

func apiErrorCode(w http.ResponseWriter, status int, typ, code, msg string) {
	var e apiErr
	e.Error.Message, e.Error.Type = msg, typ
	if code != "" {
		e.Error.Code = &code
	}
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
	if len(ids) >= s.cfg.Context {
		apiError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("the prompt has %d tokens; the context length is %d", len(ids), s.cfg.Context))
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

	id := fmt.Sprintf("cmpl-%d", s.now().UnixNano())
	created := s.now().Unix()
	sr := generate.SeqRequest{Prompt: ids, MaxTokens: maxTok, Sampling: sm, Seed: seed, StopStrings: stops}
	if eos := s.cfg.Tok.EOS(); eos >= 0 {
		sr.StopIDs = []int32{eos}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	j := newJob(ctx, sr, req.Stream)
	s.submit(j)
	object := "text_completion"
	if chat {
		object = "chat.completion"
	}
	if !req.Stream {
		<-j.done
		if j.err != nil {
			if ctx.Err() == nil {
				apiError(w, http.StatusInternalServerError, "server_error", j.err.Error())
			}
			return // else the client went away
		}
		choice := map[string]any{"index": 0, "finish_reason": j.finish, "logprobs": nil}
		if chat {
			choice["message"] = map[string]any{"role": "assistant", "content": j.text}
		} else {
			choice["text"] = j.text
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": id, "object": object, "created": created, "model": s.cfg.ModelID,
			"choices": []any{choice},
			"usage": map[string]int{
				"prompt_tokens": len(ids), "completion_tokens": j.tokens, "total_tokens": len(ids) + j.tokens,
			},
		})
		return
	}
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
	sendText := func(text string) bool {
		if text == "" {
			return true
		}
		if chat {
			return send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{"content": text}, nil, chat))
		}
		return send(chunk(id, object, created, s.cfg.ModelID, text, nil, chat))
	}
	if chat && !send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{"role": "assistant", "content": ""}, nil, chat)) {
		cancel()
	}
	for done := false; !done; {
		select {
		case <-j.wake:
		case <-j.done:
			done = true
		}
		if !sendText(j.take()) {
			cancel() // the scheduler drops it at the next step
		}
	}
	if j.err != nil {
		return // client went away (or the server stopped)
	}
	fin := j.finish
	if chat {
		send(chunk(id, object+".chunk", created, s.cfg.ModelID, map[string]any{}, &fin, chat))
	} else {
		send(chunk(id, object, created, s.cfg.ModelID, "", &fin, chat))
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
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
