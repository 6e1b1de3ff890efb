package serve

import (
	"context"
	"errors"
	"strings"
	"sync"

	"llmlab/core/generate"
)

// errStopped ends requests still running when the server stops.
var errStopped = errors.New("serve: the server is shutting down")

// job is one request between its handler and the scheduler. The
// scheduler never waits on the handler: streamed text goes into buf and a
// signal on wake (capacity 1, sent without blocking); the handler drains
// buf at its own pace.
type job struct {
	ctx    context.Context // the request's; cancelled when the client leaves
	req    generate.SeqRequest
	seq    *generate.Seq // while running
	wake   chan struct{} // (1) new text in buf
	done   chan struct{} // closed when the job has ended
	mu     sync.Mutex
	buf    strings.Builder // streamed text not yet taken
	stream bool
	count  func(*job) // the server's tally, called once when the job ends

	// Set before done is closed.
	text, finish string
	tokens       int
	err          error // nil, the request's context error, or why it failed
}

func newJob(ctx context.Context, req generate.SeqRequest, stream bool) *job {
	j := &job{ctx: ctx, req: req, stream: stream, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if stream {
		j.req.OnText = j.onText
	}
	return j
}

// onText runs on the scheduler's goroutine.
func (j *job) onText(text string) bool {
	if j.ctx.Err() != nil {
		return false // leave the batch now
	}
	j.mu.Lock()
	j.buf.WriteString(text)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns and clears the streamed text not yet sent.
func (j *job) take() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := j.buf.String()
	j.buf.Reset()
	return t
}

// end records the outcome and wakes the handler; err nil means seq
// finished.
func (j *job) end(err error) {
	if err == nil && j.seq != nil {
		j.text, j.finish, j.tokens = j.seq.Text(), j.seq.Finish(), len(j.seq.IDs())
		if j.seq.Cancelled() {
			err = context.Canceled
			if e := j.ctx.Err(); e != nil {
				err = e
			}
		}
	}
	j.err = err
	if j.count != nil {
		j.count(j)
	}
	close(j.done)
}

// submit queues j for the scheduler (the caller holds an admission slot).
func (s *Server) submit(j *job) {
	s.submitted.Add(1)
	j.count = s.tally
	s.start.Do(func() { go s.schedule() })
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		j.end(errStopped)
		return
	}
	s.queue = append(s.queue, j)
	s.queued.Store(int64(len(s.queue)))
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// schedule is the one goroutine that decodes: it moves queued jobs into
// free slots, drops the ones whose client left, and steps the batch.
func (s *Server) schedule() {
	defer close(s.stopped)
	var active []*job
	batch, err := s.gen.NewBatch(s.cfg.Parallel, s.cfg.Context)
	if err == nil {
		defer batch.Close()
		active = make([]*job, 0, s.cfg.Parallel)
	}
	for {
		s.qmu.Lock()
		idle := len(s.queue) == 0 && len(active) == 0
		s.qmu.Unlock()
		if idle {
			select {
			case <-s.wake:
			case <-s.quit:
			}
		}
		select {
		case <-s.quit:
			for _, j := range active {
				j.end(errStopped)
			}
			s.running.Store(0)
			s.qmu.Lock()
			s.closed = true
			for _, j := range s.queue {
				j.end(errStopped)
			}
			s.queue = nil
			s.queued.Store(0)
			s.qmu.Unlock()
			return
		default:
		}
		s.run.Lock()
		// Take waiting jobs into free slots; drop those whose client left.
		var joins []*job
		s.qmu.Lock()
		keep := s.queue[:0]
		for _, j := range s.queue {
			switch {
			case j.ctx.Err() != nil:
				j.end(j.ctx.Err())
			case err != nil:
				j.end(err)
			case len(active)+len(joins) < s.cfg.Parallel:
				joins = append(joins, j)
			default:
				keep = append(keep, j)
			}
		}
		clear(s.queue[len(keep):])
		s.queue = keep
		s.queued.Store(int64(len(keep)))
		s.qmu.Unlock()
		// One join a prompt: a prompt prefilled alone gets exactly the
		// keys it gets when the request runs alone.
		for _, j := range joins {
			seqs, jerr := batch.Join(j.req)
			if jerr != nil {
				j.end(jerr)
				continue
			}
			j.seq = seqs[0]
			active = append(active, j)
		}
		for _, j := range active {
			if j.ctx.Err() != nil {
				batch.Cancel(j.seq) // the client left: free the slot now
			}
		}
		if batch != nil && batch.Running() > 0 {
			if serr := batch.Step(); serr != nil {
				for _, j := range active {
					batch.Cancel(j.seq)
					j.end(serr)
				}
				active = active[:0]
			}
		}
		// Finished jobs leave.
		n := 0
		for _, j := range active {
			if j.seq.Done() {
				j.end(nil)
				continue
			}
			active[n] = j
			n++
		}
		clear(active[n:])
		active = active[:n]
		s.running.Store(int64(n))
		if s.onStep != nil {
			s.onStep()
		}
		s.run.Unlock()
	}
}

// tally counts an ended job.
func (s *Server) tally(j *job) {
	if j.err == nil {
		s.answered.Add(1)
	} else {
		s.abandoned.Add(1)
	}
}
