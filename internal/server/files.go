package server

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"syscall"

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
	}
	return 0, "", false
}

// root opens the session's root and the request's path.
func (s *Server) root(w http.ResponseWriter, r *http.Request) (*os.Root, string, bool) {
	p := r.URL.Query().Get("path")
	if p == "" {
		s.fail(w, badRequest("path: required, the absolute path of a file in the session (?path=/workspace/a.txt)"))
		return nil, "", false
	}
	root, err := s.m.Root(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return nil, "", false
	}
	return root, p, true
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
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	if err := files.Write(root, p, r.Body, mode, s.opts.MaxFileBytes); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	f, info, err := files.Open(root, p)
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
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	fi, err := files.Stat(root, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, fi)
}

func (s *Server) listDir(w http.ResponseWriter, r *http.Request) {
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	l, err := files.List(root, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) putArchive(w http.ResponseWriter, r *http.Request) {
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	spool := s.opts.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	if err := files.ExtractTar(root, p, r.Body, s.opts.MaxArchiveBytes, spool); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getArchive(w http.ResponseWriter, r *http.Request) {
	root, p, ok := s.root(w, r)
	if !ok {
		return
	}
	defer root.Close()
	// Checked first, while the answer can still be an error.
	fi, err := files.Stat(root, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	if fi.Type != "dir" {
		s.fail(w, badRequest("path %q: not a directory (GET files for a single file)", p))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := files.WriteTar(root, p, w); err != nil {
		// Too late for a status: cut the connection, so that the
		// client sees a broken transfer rather than a short archive.
		s.opts.Log("archive of %s in %s: %v", p, r.PathValue("id"), err)
		panic(http.ErrAbortHandler)
	}
}
