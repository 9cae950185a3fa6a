// Package decoy makes one run's decoy credentials: plausible fake contents,
// in the real tools' formats, for the credential stores that the default
// mask table hides, each carrying canary tokens drawn at random for the run.
//
// An agent talked into reading ~/.aws/credentials and sending it somewhere
// then sends a decoy, and the egress gateway, which knows the run's
// canaries, sees one leave and raises the alarm.
//
//	decoys, canaries, err := decoy.Generate(home, user, rand.Reader)
//
// The package only makes bytes. Putting the files over the masks is the
// sandbox's work and scanning for the canaries is the gateway's.
//
// # What it covers
//
// Only masks of [policy.Masks] under the home directory with a format known
// here get a decoy (see formats.go for the list); the others stay empty masks.
// Each file parses with its tool's format: INI for AWS and PyPI, an OpenSSH
// ed25519 key that ssh reads, kubeconfig and gh YAML, Docker, gcloud and
// Terraform JSON, netrc, git's credential store.
//
// # What it guarantees
//
// Every canary token is at least 16 ASCII characters, holds at least 80 bits
// drawn from the reader, is unique within the run (Generate fails rather
// than repeat one), and appears verbatim in the file its Canary.Where names,
// with one exception: Docker keeps its token inside the base64 of "user:token"
// in the "auth" field, so the gateway must look for encoded forms too. The
// canary of the SSH key is a run of its base64 body taken from the key bytes,
// not from the header that every OpenSSH key shares.
//
// # What it does not guarantee
//
// A decoy fools a read, not a check: the tokens carry no valid checksum, no
// server knows them, and the kubeconfig's cluster does not exist. The decoys
// say nothing when they are only read; the alarm needs them to leave through
// the gateway, in a form it recognises.
package decoy
