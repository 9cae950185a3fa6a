package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/session"
)

// Bounds of request bodies.
const (
	MaxJSONBytes           = 1 << 20
	DefaultMaxFileBytes    = 1 << 30
	DefaultMaxArchiveBytes = 1 << 30
)

// Options are a Server's.
type Options struct {
	// Token, if set, is required of every request as "Authorization:
	// Bearer TOKEN". Set it for TCP; a unix socket relies on its mode.
	Token string
	// MaxFileBytes bounds a file PUT; MaxArchiveBytes the bytes an
	// archive PUT extracts. 0: 1 GiB.
	MaxFileBytes, MaxArchiveBytes int64
	// SpoolDir is where an archive is held while it is checked, before
	// anything of it reaches the session; "": the system's temporary
	// directory.
	SpoolDir string
	// Log receives what the caller is not told: internal errors in full.
	Log func(format string, args ...any)
}

// Server serves the session API of one Manager.
type Server struct {
	m     *session.Manager
	opts  Options
	token [sha256.Size]byte
	mux   *http.ServeMux
}

// New makes the API's handler over m.
func New(m *session.Manager, opts Options) *Server {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.MaxArchiveBytes <= 0 {
		opts.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	s := &Server{m: m, opts: opts, mux: http.NewServeMux()}
	if opts.Token != "" {
		s.token = sha256.Sum256([]byte(opts.Token))
	}

	s.mux.HandleFunc("GET /v1/health", s.health)
	s.mux.HandleFunc("POST /v1/sessions", s.create)
	s.mux.HandleFunc("GET /v1/sessions", s.list)
	s.mux.HandleFunc("GET /v1/sessions/{id}", s.get)
	s.mux.HandleFunc("DELETE /v1/sessions/{id}", s.delete)
	s.mux.HandleFunc("POST /v1/sessions/{id}/timeout", s.timeout)
	s.mux.HandleFunc("POST /v1/sessions/{id}/exec", s.exec)
	s.mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/stdin", s.stdin)
	s.mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/resize", s.resize)
	s.mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/signal", s.signal)
	s.mux.HandleFunc("PUT /v1/sessions/{id}/files", s.putFile)
	s.mux.HandleFunc("GET /v1/sessions/{id}/files", s.getFile)
	s.mux.HandleFunc("GET /v1/sessions/{id}/files/stat", s.statFile)
	s.mux.HandleFunc("GET /v1/sessions/{id}/files/list", s.listDir)
	s.mux.HandleFunc("PUT /v1/sessions/{id}/archive", s.putArchive)
	s.mux.HandleFunc("GET /v1/sessions/{id}/archive", s.getArchive)
	s.mux.HandleFunc("GET /v1/sessions/{id}/events", s.events)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	// Everything else, a wrong method included, is a JSON 404 rather
	// than the mux's text.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP checks the token, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cordon"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a bearer token is required (Authorization: Bearer TOKEN; the token is in the server's --token-file)")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized compares the request's token with the server's in constant
// time; hashing both first makes the time independent of the length too.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := client.Health{Status: "ok", Runtimes: map[string]string{}}
	for name, err := range s.m.Runtimes() {
		if err != nil {
			h.Runtimes[name] = err.Error()
		} else {
			h.Runtimes[name] = "ok"
		}
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req client.CreateRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	sess, err := s.m.Create(r.Context(), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/v1/sessions/"+sess.ID)
	writeJSON(w, http.StatusCreated, sess)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	labels := map[string]string{}
	for _, kv := range r.URL.Query()["label"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			s.fail(w, badRequest("label %q: want KEY=VALUE", kv))
			return
		}
		if err := session.CheckLabel(k, v); err != nil {
			s.fail(w, err)
			return
		}
		if old, dup := labels[k]; dup && old != v {
			s.fail(w, badRequest("label %s: given twice, with different values", k))
			return
		}
		labels[k] = v
	}
	ss, err := s.m.List(labels)
	if err != nil {
		s.fail(w, err)
		return
	}
	if ss == nil {
		ss = []client.Session{}
	}
	writeJSON(w, http.StatusOK, client.List{Sessions: ss})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	sess, err := s.m.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if err := s.m.Delete(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) timeout(w http.ResponseWriter, r *http.Request) {
	var req client.TimeoutRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	sess, err := s.m.SetTimeout(r.PathValue("id"), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.m.WriteMetrics(w); err != nil {
		s.opts.Log("writing metrics: %v", err)
	}
}

// decode reads a JSON body strictly: at most MaxJSONBytes, no unknown
// field, one value.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxJSONBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return err
		case errors.Is(err, io.EOF):
			return badRequest("the body is empty: want a JSON object")
		}
		return badRequest("the body is not the JSON this endpoint takes: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return badRequest("the body holds more than one JSON value")
	}
	return nil
}

// requestError is a 400 the server itself decides.
type requestError struct{ msg string }

func (e *requestError) Error() string        { return e.msg }
func (e *requestError) Is(target error) bool { return target == session.ErrBadRequest }

func badRequest(format string, args ...any) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

// fail answers err with its status and a client.Error.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := classify(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.opts.Log("internal error: %v", err)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		msg = fmt.Sprintf("the body is larger than %d bytes, the most this endpoint takes", tooLarge.Limit)
	}
	writeError(w, status, code, msg)
}

// classify is the HTTP status and client.Error code of err.
func classify(err error) (int, string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, session.ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, session.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, session.ErrStopped), errors.Is(err, session.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, session.ErrLimit), errors.Is(err, session.ErrNoRuntime):
		return http.StatusServiceUnavailable, "unavailable"
	}
	if status, code, ok := classifyFiles(err); ok {
		return status, code
	}
	return http.StatusInternalServerError, "internal"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, client.Error{Code: code, Message: msg})
}
