package tlsca

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// systemBundles are the usual places of the system's trust store as one
// PEM file, in the order SystemBundle tries them.
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu (and Alpine, Arch, Gentoo)
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL 7 on
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
	"/etc/ca-certificates/extracted/tls-ca-bundle.pem",  // Arch
}

// SystemBundle returns the host's system trust store: the first of the
// usual locations that is a regular file (through symlinks) holding a PEM
// certificate, and its bytes.
//
// path is the location as listed, not resolved: the sandbox mounts
// [CA.Bundle] over it, and a mount on a symlink lands on the symlink's
// target, so programs reading either name see the bundle.
func SystemBundle() (path string, pem []byte, err error) {
	for _, p := range systemBundles {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("reading the system trust store: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Size() == 0 {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", nil, fmt.Errorf("reading the system trust store: %w", err)
		}
		if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
			continue
		}
		return p, b, nil
	}
	return "", nil, fmt.Errorf("no system trust store among %s", strings.Join(systemBundles, ", "))
}
