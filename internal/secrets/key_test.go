package secrets

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// ed25519PEM returns an OpenSSH ed25519 private key made from seed.
func ed25519PEM(t *testing.T, seed byte) []byte {
	t.Helper()
	s := sha256.Sum256([]byte{seed})
	key := ed25519.NewKeyFromSeed(s[:])
	block, err := ssh.MarshalPrivateKey(key, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

var rsaKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// testKey is a private key in one encoding, and its public half in the
// encodings that travel openly.
type testKey struct {
	name   string
	pem    []byte
	public string // authorized_keys line, and PEM of the public key
	parsed bool   // ssh parses it without a passphrase
}

func testKeys(t *testing.T) []testKey {
	t.Helper()
	rk, err := rsaKey()
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public := func(k any) string {
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(ssh.MarshalAuthorizedKey(p)) + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	openssh := func(k any, pass string) []byte {
		var b *pem.Block
		var err error
		if pass == "" {
			b, err = ssh.MarshalPrivateKey(k, "alice@laptop")
		} else {
			b, err = ssh.MarshalPrivateKeyWithPassphrase(k, "alice@laptop", []byte(pass))
		}
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(b)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	return []testKey{
		{"openssh ed25519", openssh(edk, ""), public(edk.Public()), true},
		{"openssh rsa", openssh(rk, ""), public(&rk.PublicKey), true},
		{"openssh ecdsa", openssh(ek, ""), public(&ek.PublicKey), true},
		{"openssh ed25519 with a passphrase", openssh(edk, "hunter2"), public(edk.Public()), false},
		{"pkcs1 rsa", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), public(&rk.PublicKey), true},
		{"sec1 ecdsa", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), public(&ek.PublicKey), true},
		{"pkcs8 rsa", pkcs8(rk), public(&rk.PublicKey), true},
		{"pkcs8 ecdsa", pkcs8(ek), public(&ek.PublicKey), true},
		{"pkcs8 ed25519", pkcs8(edk), public(edk.Public()), true},
	}
}

// TestKeyValue: the value of a key is a run of one line of its body, which
// a copy of the key in transit holds, and which is neither the header of
// every OpenSSH key nor part of the public key.
func TestKeyValue(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			v, rest, found, ok := nextKey(append([]byte("# my key\n"), k.pem...))
			if !found || !ok {
				t.Fatalf("nextKey: found %v, ok %v", found, ok)
			}
			if strings.TrimSpace(string(rest)) != "" {
				t.Errorf("nextKey left %q after the key", rest)
			}
			if len(v) < MinLen {
				t.Errorf("value %s is shorter than MinLen", redact(v))
			}
			inLine := false
			for _, l := range strings.Split(string(k.pem), "\n") {
				inLine = inLine || strings.Contains(l, v) && !strings.HasPrefix(l, "-----")
			}
			if !inLine {
				t.Errorf("value %s is not within a line of the key's body", redact(v))
			}
			if strings.HasPrefix(v, "b3BlbnNzaC1rZXktdjE") {
				t.Errorf("value %s is the header of every OpenSSH key", redact(v))
			}
			if strings.Contains(k.public, v) {
				t.Errorf("value %s is in the public key", redact(v))
			}
			if !k.parsed {
				lines := strings.Split(strings.TrimSpace(string(k.pem)), "\n")
				body := lines[1 : len(lines)-1]
				last := ""
				for _, l := range body {
					if len(l) == len(body[0]) {
						last = l
					}
				}
				if v != last {
					t.Errorf("value of a key ssh cannot parse = %s, want its last full line %s", redact(v), redact(last))
				}
			}
		})
	}
}

func TestNextKey(t *testing.T) {
	key := string(ed25519PEM(t, 7))
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	tests := []struct {
		name        string
		in          string
		found, ok   bool
		keysInInput int
	}{
		{"none", "just text", false, false, 0},
		{"a certificate", cert, false, false, 0},
		{"a certificate, then a key", cert + key, true, true, 1},
		{"two keys", key + key, true, true, 2},
		{"no END line", strings.Split(key, "-----END")[0], true, false, 1},
		{"not base64", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", true, false, 1},
		{"empty body", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", true, false, 1},
		{"header without a line end", "-----BEGIN PRIVATE KEY-----", true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rest, found, ok := nextKey([]byte(tt.in))
			if found != tt.found || ok != tt.ok {
				t.Errorf("nextKey(%q) found %v, ok %v; want %v, %v", tt.name, found, ok, tt.found, tt.ok)
			}
			n := 0
			for b := []byte(tt.in); ; n++ {
				_, more, found, _ := nextKey(b)
				if !found {
					break
				}
				b = more
			}
			if n != tt.keysInInput {
				t.Errorf("keys found in %q = %d, want %d (rest %q)", tt.name, n, tt.keysInInput, rest)
			}
		})
	}
}
