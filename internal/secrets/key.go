package secrets

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"strings"

	"golang.org/x/crypto/ssh"
)

// nextKey finds the first PEM private key block in b and returns its value
// (see keyValue) and what follows it. found is false if b holds no private
// key header; ok is false if the block is broken.
func nextKey(b []byte) (value string, rest []byte, found, ok bool) {
	const begin = "-----BEGIN "
	for {
		i := bytes.Index(b, []byte(begin))
		if i < 0 {
			return "", nil, false, false
		}
		eol := bytes.IndexByte(b[i:], '\n')
		if eol < 0 {
			eol = len(b) - i
		}
		header := strings.TrimSpace(string(b[i : i+eol]))
		typ, isKey := strings.CutSuffix(strings.TrimPrefix(header, begin), "-----")
		if !isKey || !strings.HasSuffix(typ, "PRIVATE KEY") {
			b = b[i+len(begin):] // a certificate, a public key
			continue
		}
		footer := "-----END " + typ + "-----"
		body := b[i+eol:]
		end := bytes.Index(body, []byte(footer))
		if end < 0 {
			return "", body, true, false
		}
		v, ok := keyValue(b[i:i+eol+end+len(footer)], body[:end])
		return v, body[end+len(footer):], true, ok
	}
}

// keyValue returns the value that stands for a private key: the longest
// run of its base64 body, within one line, that encodes secret bytes only
// (the seed of an ed25519 key, the private exponent of an RSA key, the
// scalar of an ECDSA key), taken as internal/decoy takes its canary. A key
// that ssh cannot parse (under a passphrase, or of a kind it does not know)
// gives the last full line of its body: ciphertext, or near the end of the
// key, past the header and the public key. block is the whole PEM block;
// body is what lies between its header and its END line.
func keyValue(block, body []byte) (string, bool) {
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, ":") {
			continue // RFC 1421 headers of an encrypted key: Proc-Type, DEK-Info
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return "", false
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
	if err != nil {
		return "", false
	}
	if key, err := ssh.ParseRawPrivateKey(block); err == nil {
		if secret := secretOf(key); len(secret) > 0 {
			if at := bytes.Index(der, secret); at >= 0 {
				if run := runOf(lines, at, len(secret)); len(run) >= MinLen {
					return run, true
				}
			}
		}
	}
	last := lines[0]
	for _, l := range lines {
		if len(l) == len(lines[0]) {
			last = l
		}
	}
	return last, true
}

// secretOf returns the secret bytes of a key parsed by the ssh package, in
// the shortest form every encoding of the key holds.
func secretOf(key any) []byte {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.D.Bytes()
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			return nil
		}
		// OpenSSH writes the scalar as an mpint, without leading zeros.
		return bytes.TrimLeft(b, "\x00")
	case ed25519.PrivateKey:
		return k.Seed()
	case *ed25519.PrivateKey:
		return k.Seed()
	}
	return nil
}

// runOf returns the longest run of lines, within one line, whose base64
// characters encode bytes of [at, at+n) of the decoded body only. Base64
// character i encodes part of the 3 bytes from 3*(i/4): the characters in
// [lo, hi) encode whole groups inside the range.
func runOf(lines []string, at, n int) string {
	lo, hi := (at+2)/3*4, (at+n)/3*4
	best, off := "", 0
	for _, line := range lines {
		if a, b := max(lo, off), min(hi, off+len(line)); b-a > len(best) {
			best = line[a-off : b-off]
		}
		off += len(line)
	}
	return best
}
