package server

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/cordon-sandbox/cordon/internal/session"
	"github.com/cordon-sandbox/cordon/internal/session/files"
)

// classifyFiles is the status of an error of package files.
func classifyFiles(err error) (int, string, bool) {
	switch {
	case errors.Is(err, files.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", true
	case errors.Is(err, files.ErrBadPath), errors.Is(err, files.ErrNotRegular),
		// A file where the path needs a directory, or the reverse.
		errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		return http.StatusBadRequest, "bad_request", true
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound, "not_found", true
	case errors.Is(err, fs.ErrPermission):
		// What the session's user could not do either.
		return http.StatusForbidden, "forbidden", true
	}
	return 0, "", false
}

// root opens the session's root and the request's path, and says whom the
// session's files belong to (the handlers act as them: asOwner).
func (s *Server) root(w http.ResponseWriter, r *http.Request) (*os.Root, string, session.Owner, bool) {
	p := r.URL.Query().Get("path")
	if p == "" {
		s.fail(w, badRequest("path: required, the absolute path of a file in the session (?path=/workspace/a.txt)"))
		return nil, "", session.Owner{}, false
	}
	root, owner, err := s.m.Root(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return nil, "", session.Owner{}, false
	}
	return root, p, owner, true
}

func (s *Server) putFile(w http.ResponseWriter, r *http.Request) {
	mode := os.FileMode(0o644)
	if m := r.URL.Query().Get("mode"); m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o777 {
			s.fail(w, badRequest("mode %q: want octal permission bits, such as 0644 or 0755", m))
			return
		}
		mode = os.FileMode(n)
	}
	if r.ContentLength > s.opts.MaxFileBytes {
		s.fail(w, &http.MaxBytesError{Limit: s.opts.MaxFileBytes})
		return
	}
	root, p, owner, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	if err := asOwner(owner, func() error { return files.Write(root, p, r.Body, mode, s.opts.MaxFileBytes) }); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	root, p, owner, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	var f *os.File
	var info os.FileInfo
	err := asOwner(owner, func() (err error) {
		f, info, err = files.Open(root, p)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers ranges and conditional requests; the name is
	// empty so that nothing is guessed from it.
	http.ServeContent(w, r, "", info.ModTime(), f)
}

func (s *Server) statFile(w http.ResponseWriter, r *http.Request) {
	answerAsOwner(s, w, r, files.Stat)
}

func (s *Server) listDir(w http.ResponseWriter, r *http.Request) {
	answerAsOwner(s, w, r, files.List)
}

// answerAsOwner answers with what f says of the request's path, in the
// session's root, acting as the session's owner.
func answerAsOwner[T any](s *Server, w http.ResponseWriter, r *http.Request, f func(*os.Root, string) (T, error)) {
	root, p, owner, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	var v T
	err := asOwner(owner, func() (err error) {
		v, err = f(root, p)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) putArchive(w http.ResponseWriter, r *http.Request) {
	root, p, owner, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	spool := s.opts.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	// The spool must be writable by the session's owner (cordon serve
	// gives it to them).
	if err := asOwner(owner, func() error { return files.ExtractTar(root, p, r.Body, s.opts.MaxArchiveBytes, spool) }); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getArchive(w http.ResponseWriter, r *http.Request) {
	root, p, owner, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	var streamErr error
	err := asOwner(owner, func() error {
		// Checked first, while the answer can still be an error.
		fi, err := files.Stat(root, p)
		if err != nil {
			return err
		}
		if fi.Type != "dir" {
			return badRequest("path %q: not a directory (GET files for a single file)", p)
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		streamErr = files.WriteTar(root, p, w)
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if streamErr != nil {
		// Too late for a status: cut the connection, so that the
		// client sees a broken transfer rather than a short archive.
		s.opts.Log("archive of %s in %s: %v", p, r.PathValue("id"), streamErr)
		panic(http.ErrAbortHandler)
	}
}
