// Package policyfile reads Cordon's policy files and stacks them into the
// policy of one run.
//
// A policy file says in TOML what the flags of `cordon run` say: the
// paths written and masked, the hosts allowed and denied, the variables
// passed and dropped, the limits, the canaries, the audit log. TOML,
// because it has comments, no indentation that means something (YAML's
// traps), explicit types, and is what the agents' own configurations
// use (Codex's config.toml). docs/policy.md describes every key, and
// docs/policy.schema.json gives editors the same; a test holds both to
// this package's table of keys.
//
// # Strict
//
// [Parse] refuses what it does not understand rather than guess: a syntax
// error, an unknown key, a value of the wrong type, a key set twice, a bad
// value (a host as the gateway would refuse it, a size, a duration), and
// values of one file that contradict each other (a host both allowed and
// denied, a writable path inside a masked one). Each problem is an
// [Error] that names its place and key,
//
//	policy.toml:12:5: network.allow[3]: invalid rule "exa mple.com": ...
//
// and a file's problems come together, up to [MaxErrors].
//
// # Layers
//
// [Merge] stacks the layers of a run, lowest first: the built-in defaults,
// the user policy, the workspace policy (only once `cordon trust` recorded
// it: see internal/trust), the profile named with --profile (built in, or
// the user's own, with what it extends), and the flags. Lists merge; a
// scalar takes the highest layer's value; and whatever denies wins over
// whatever allows, from any layer: a denied host stays denied, a masked
// path stays masked. The result is a policy.Policy, the run-level settings
// beside it, and, for each value, the layer it came from, which `cordon
// policy show` prints.
//
// The built-in profiles are TOML files of this package (profiles/*.toml),
// embedded in the binary.
//
// # What it does not do
//
// It reads no workspace file itself: the caller hands it the bytes that
// internal/trust vouched for. Merge touches the file system only through
// [Host]: to resolve writable paths, to tell masked files from
// directories, and to list the home for filesystem.home = "hidden".
package policyfile
