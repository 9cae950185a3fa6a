package session

import (
	"sort"
	"sync"

	"github.com/cordon-sandbox/cordon/client"
)

// Store keeps the records of sessions: what the API says of each. The
// Manager writes a record when a session is made, changes state or gets a
// new timeout, and removes it a while after the session stopped. What it
// takes to reach a running box (the Box, the gateway, open execs) stays in
// the Manager's memory; a backend that places sessions elsewhere (as
// Kubernetes pods) replaces the Store and the Runtime, not the API.
type Store interface {
	// Put adds or replaces the record of s.ID.
	Put(s client.Session) error
	// Get returns the record of id, or ErrNotFound.
	Get(id string) (client.Session, error)
	// List returns every record, oldest first.
	List() ([]client.Session, error)
	// Delete forgets id; forgetting an unknown id is no error.
	Delete(id string) error
}

// MemoryStore is a Store in this process's memory: sessions do not
// outlive the server (nor do their boxes, which the next server sweeps).
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]client.Session
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]client.Session{}} }

func (s *MemoryStore) Put(r client.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[r.ID] = copySession(r)
	return nil
}

func (s *MemoryStore) Get(id string) (client.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok {
		return client.Session{}, ErrNotFound
	}
	return copySession(r), nil
}

func (s *MemoryStore) List() ([]client.Session, error) {
	s.mu.Lock()
	out := make([]client.Session, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, copySession(r))
	}
	s.mu.Unlock()
	sortSessions(out)
	return out, nil
}

func (s *MemoryStore) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// copySession copies the one field a caller could change under the
// store's feet.
func copySession(r client.Session) client.Session {
	if r.Labels != nil {
		l := make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			l[k] = v
		}
		r.Labels = l
	}
	return r
}

// sortSessions orders sessions oldest first, by id among equals, so that
// a list reads the same twice.
func sortSessions(ss []client.Session) {
	sort.Slice(ss, func(i, j int) bool {
		if !ss[i].CreatedAt.Equal(ss[j].CreatedAt) {
			return ss[i].CreatedAt.Before(ss[j].CreatedAt)
		}
		return ss[i].ID < ss[j].ID
	})
}
