// Package agenttest holds fakes for the agent's two inputs, as periph.io's
// gpiotest does for pins: a FrameSource that replays a slice of frames and
// a Classifier whose scores a test chooses.
package agenttest

import (
	"context"
	"image"
	"sync"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
)

// Source replays Frames in order. After the last one it returns
// agent.ErrSourceDone, or starts over when Loop is set. When Start is not
// nil, the first Next waits until it is closed (so that a test can hold
// frames back until it is listening).
type Source struct {
	Frames []agent.Frame
	Loop   bool
	Start  <-chan struct{}

	mu     sync.Mutex
	next   int
	seq    uint64
	closed bool
}

// Images is a Source of pictures.
func Images(imgs ...image.Image) *Source {
	s := &Source{}
	for _, img := range imgs {
		s.Frames = append(s.Frames, agent.Frame{Image: img})
	}
	return s
}

// Tensors is a Source of ready model inputs.
func Tensors(ts ...[]float32) *Source {
	s := &Source{}
	for _, t := range ts {
		s.Frames = append(s.Frames, agent.Frame{Pixels: t})
	}
	return s
}

func (s *Source) Next(ctx context.Context) (agent.Frame, error) {
	if s.Start != nil {
		select {
		case <-s.Start:
		case <-ctx.Done():
			return agent.Frame{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return agent.Frame{}, err
	}
	if s.closed || len(s.Frames) == 0 || (!s.Loop && s.next >= len(s.Frames)) {
		return agent.Frame{}, agent.ErrSourceDone
	}
	f := s.Frames[s.next%len(s.Frames)]
	s.next++
	s.seq++
	f.Seq, f.Time = s.seq, time.Now()
	return f, nil
}

func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Classifier returns Fn(input) as scores. Info describes it (labels, input
// size); Fn must return len(Info.Labels) scores. When Embed is set, its
// sessions also give Embed(input) as the embedding (Model.EmbeddingDim
// values), which is enough for on-device learning (in the head package's
// Replace mode: a fake has no classifier layer to extend).
type Classifier struct {
	Model agent.ModelInfo
	Fn    func(input []float32) []float32
	Embed func(input []float32) []float32
}

func (c *Classifier) Info() agent.ModelInfo { return c.Model }

func (c *Classifier) NewSession() agent.Session {
	s := &session{c: c, in: make([]float32, c.Model.Height*c.Model.Width*c.Model.Channels)}
	if c.Embed != nil {
		return &embeddingSession{s}
	}
	return s
}

type session struct {
	c   *Classifier
	in  []float32
	emb []float32
}

func (s *session) Input() []float32 { return s.in }

func (s *session) Run() ([]float32, error) {
	if s.c.Embed != nil {
		s.emb = s.c.Embed(s.in)
	}
	return s.c.Fn(s.in), nil
}

type embeddingSession struct{ *session }

func (s *embeddingSession) Embedding() []float32 { return s.emb }
