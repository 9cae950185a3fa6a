// Package secrets finds secrets beyond the run's canaries: the host's own
// credential values, and tokens of well-known formats that Cordon has never
// seen.
//
// The canaries of internal/canary say that a decoy is leaving. Two other
// leaks stay silent to them: a real credential of the host that reached the
// sandbox some other way (a copy in the workspace, a value pasted into a
// prompt or left in a build log), and a token that never was on the host
// at all (one the agent was handed, or made). This package
// gives the gateway a list of exact values for the first and a format
// detector for the second:
//
//	vals, skipped := secrets.Discover(home, dropped) // dropped: NAME=VALUE
//	tokens := make([]string, len(vals))
//	for i, v := range vals {
//		tokens[i] = v.Value // for canary.New: found raw and in every encoding
//	}
//
//	d := secrets.NewDetector(allow) // each from ParseAllow("github-token@api.github.com")
//	if f, ok := d.Find(body, host); ok {
//		// f.Rule is leaving for host; f.Redacted(body) can be logged
//	}
//
// # The host's values
//
// [Discover] reads, on the host and before the sandbox starts, the
// credential stores of [policy.Masks] whose format it knows, and returns
// the secret values in them: AWS credentials, config and the CLI's and
// SSO's caches; gcloud's application default and legacy credentials;
// Azure CLI's token caches; kubeconfigs; Docker's config.json; OCI's config
// and the key it names; doctl; Terraform; private keys in ~/.ssh and the
// host keys in /etc/ssh (readable when Cordon runs as root); netrc; git's
// credential stores; gh and hub; npm, yarn, PyPI, pip, Cargo and RubyGems;
// Maven's settings.xml and Gradle's gradle.properties; ~/.config/anthropic;
// ~/.vault-token. The table in stores.go lists them; the comment of each
// reader says what it takes.
//
// It never reads browser profiles, GNOME and KDE keyrings, ~/.gnupg or
// ~/.password-store: they are binary or encrypted, and what a program
// could take from them is not a string this package could name. Nor does
// it read gcloud's credentials.db and access_tokens.db (SQLite), or
// /etc/shadow (hashes, not values that travel).
//
// A private key is reported as one run of its PEM body that encodes only
// secret bytes (for an OpenSSH ed25519 key, the very run that
// internal/decoy plants as the canary of its decoy key): any copy of the
// whole key in transit contains it, and unlike the body's first line it is
// not the header that every OpenSSH key shares, nor the public key that
// id_*.pub also holds. A key Cordon cannot parse (one under a passphrase)
// is reported as the last full line of its body, which is ciphertext. A
// base64 "user:password" (Docker's auth, npm's _auth) is reported whole
// and its password alone; gcloud's own OAuth client secrets, which every
// installation holds and sends, are not reported.
//
// Environment variables are reported whole, except those that policy's
// patterns catch for what they point at rather than what they hold:
// paths (*_FILE, *_PATH, SSH_AUTH_SOCK), regions and profiles (AWS_REGION,
// AWS_PROFILE), addresses (VAULT_ADDR). A URL's password is reported on
// its own too.
//
// Discover is bounded: it skips files over 1 MiB, reads at most 200
// files, walks no deeper than two directory levels, opens regular files
// only (a FIFO in ~/.ssh does not hang it), and never returns an error: a
// store that is missing says nothing, and one it cannot read or parse, or
// a value shorter than [MinLen], is counted in the skipped count it
// returns. No value ever appears in a string this package makes.
//
// # Well-known formats
//
// A [Detector] looks for tokens by their published formats (see [Rules]):
// AWS access key ids, GitHub, GitLab, Slack, Stripe, npm, PyPI, Hugging
// Face, Google API, Anthropic and OpenAI keys, and PEM private key headers.
// Each rule starts with a literal prefix and is precise: the token must not
// continue a longer run of letters and digits on either side, and its body
// must have the published length (AKIA and 16 base32 characters, no more).
//
// Find looks for a few bytes that every prefix holds ('A', 'B', '_', '-')
// with bytes.IndexByte, and checks a prefix only where the bytes beside
// one could be its. On one core of a shared development machine, 1 MiB of
// source code with nothing to find takes about 1.5 ms (700 MB/s), random
// base64 about 0.7 ms (1.5 GB/s), the same code form-encoded about 300
// MB/s; data made of the prefixes themselves, the worst case, runs at
// about 150 MB/s (BenchmarkFind).
//
// Formats are matched in the bytes as given and, when they hold a %XX
// escape that could hide a token (or a private key header with '+' for
// its spaces), once more in the bytes percent-decoded once and '+' read as
// a space, where a [Finding]'s Offset and Len then count. They are not looked for inside base64, hex, gzip or any other
// encoding: the exact values of Discover and the canaries are found in
// those by internal/canary. The formats are a net for tokens Cordon has
// never seen, not the guard of the ones it has.
//
// An [Allow] lets a rule through, anywhere or to some hosts: a GitHub token
// on its way to api.github.com is what `gh` is for.
package secrets
