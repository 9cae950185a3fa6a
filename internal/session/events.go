package session

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/audit"
)

// Event kinds the Manager adds to a session's stream, beside the audit
// kinds of its gateway ("connection", "request", "canary", "secret").
const (
	EventSessionStart = "session_start"
	EventSessionEnd   = "session_end"
	EventExecStart    = "exec_start"
	EventExecEnd      = "exec_end"
	// EventOverflow is the last event a follower gets when it read too
	// slowly and was dropped: the stream ends there, not at the session's
	// end.
	EventOverflow = "overflow"
)

const (
	// DefaultEventHistory is how many past events a session keeps for a
	// new reader; older ones are forgotten.
	DefaultEventHistory = 10000
	// subscriberBuffer is how far a follower may fall behind before it is
	// dropped. The gateway publishes under its audit log's lock, so a
	// reader that does not keep up must never make it wait.
	subscriberBuffer = 1024
)

// hub is one session's event stream: a ring of past events and the
// followers of new ones.
type hub struct {
	mu     sync.Mutex
	ring   []client.Event
	next   int // where the next event goes in ring
	full   bool
	subs   map[*Subscription]bool
	closed bool
}

func newHub(history int) *hub {
	if history <= 0 {
		history = DefaultEventHistory
	}
	return &hub{ring: make([]client.Event, history), subs: map[*Subscription]bool{}}
}

// Subscription follows a session's new events. C is closed at the
// session's end, when the follower falls too far behind (Dropped), or on
// Close.
type Subscription struct {
	C       <-chan client.Event
	c       chan client.Event
	h       *hub
	dropped bool // under h.mu
}

// Dropped says whether C was closed because the follower read too slowly.
func (s *Subscription) Dropped() bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.dropped
}

// Close stops following. Safe to call more than once.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.subs[s] {
		delete(s.h.subs, s)
		close(s.c)
	}
}

// publish adds e to the history and hands it to every follower, never
// waiting for one.
func (h *hub) publish(e client.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.ring[h.next] = e
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			s.dropped = true
			delete(h.subs, s)
			close(s.c)
		}
	}
}

// subscribe returns the past events, oldest first, and, if follow, a
// subscription to the events after them (nil once the stream has ended).
func (h *hub) subscribe(follow bool) ([]client.Event, *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var past []client.Event
	if h.full {
		past = append(past, h.ring[h.next:]...)
	}
	past = append(past, h.ring[:h.next]...)
	if !follow || h.closed {
		return past, nil
	}
	c := make(chan client.Event, subscriberBuffer)
	s := &Subscription{C: c, c: c, h: h}
	h.subs[s] = true
	return past, s
}

// close ends every follower's stream; later events are not kept.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.c)
	}
}

// newEvent is an event of the Manager's own kinds.
func newEvent(kind, session string, fields map[string]any) client.Event {
	e := client.Event{"time": time.Now().UTC().Format(time.RFC3339Nano), "event": kind, "session": session}
	for k, v := range fields {
		e[k] = v
	}
	return e
}

// auditEvent is an event of the gateway's audit log as the stream carries
// it: the audit log's own JSON field names, so that a line of the stream
// reads like a line of `cordon run`'s log.
func auditEvent(session string, a audit.Event) client.Event {
	b, err := json.Marshal(a)
	e := client.Event{}
	if err == nil {
		err = json.Unmarshal(b, &e)
	}
	if err != nil {
		// Cannot happen: audit.Event is plain data. Keep the kind.
		e = client.Event{"event": a.Event, "error": err.Error()}
	}
	if _, ok := e["time"]; !ok || a.Time.IsZero() {
		e["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	} else {
		e["time"] = a.Time.UTC().Format(time.RFC3339Nano)
	}
	e["session"] = session
	return e
}
