package policy

// Kind says whether a table entry names a directory or a file. A masked
// directory shows up empty; a masked file shows up as an empty file.
type Kind int

const (
	Dir Kind = iota
	File
)

func (k Kind) String() string {
	if k == File {
		return "file"
	}
	return "dir"
}

// Entry is one row of a built-in table.
type Entry struct {
	// Path is absolute, or relative to the user's home when it starts
	// with "~/", or (for Protected) relative to the workspace root.
	Path string
	Kind Kind
	Why  string
}

// Masks are the credential stores and host sockets hidden from every
// sandbox. A mask covers the path whether or not it exists on this host:
// see internal/sandbox for how a missing path is kept from appearing.
var Masks = []Entry{
	// Cloud and cluster credentials.
	{"~/.aws", Dir, "AWS access keys and SSO tokens"},
	{"~/.config/gcloud", Dir, "Google Cloud credentials"},
	{"~/.azure", Dir, "Azure CLI tokens"},
	{"~/.kube", Dir, "Kubernetes cluster credentials"},
	{"~/.docker/config.json", File, "container registry auths"},
	{"~/.oci", Dir, "Oracle Cloud keys"},
	{"~/.config/doctl", Dir, "DigitalOcean token"},
	{"~/.terraform.d/credentials.tfrc.json", File, "Terraform Cloud token"},
	// Keys, agents and password stores.
	{"~/.ssh", Dir, "SSH private keys"},
	{"~/.gnupg", Dir, "GnuPG private keys"},
	{"~/.password-store", Dir, "pass password store"},
	{"~/.local/share/keyrings", Dir, "GNOME keyring"},
	{"~/.local/share/kwalletd", Dir, "KDE wallet"},
	{"~/.local/state/cordon", Dir, "Cordon's audit logs and trust store: other runs' commands and destinations, the trusted workspace policies"},
	{"~/.config/cordon", Dir, "Cordon's user policy: what the walls let through, and the user's profiles"},
	// Tokens of developer tools.
	{"~/.netrc", File, "HTTP and FTP passwords (curl, git, pip)"},
	{"~/.git-credentials", File, "git credential store"},
	{"~/.config/git/credentials", File, "git credential store (XDG)"},
	{"~/.config/gh", Dir, "GitHub CLI token"},
	{"~/.config/hub", File, "hub GitHub token"},
	{"~/.npmrc", File, "npm registry token"},
	{"~/.yarnrc.yml", File, "yarn registry token"},
	{"~/.pypirc", File, "PyPI upload token"},
	{"~/.config/pip/pip.conf", File, "pip index credentials"},
	{"~/.cargo/credentials", File, "crates.io token"},
	{"~/.cargo/credentials.toml", File, "crates.io token"},
	{"~/.gem/credentials", File, "RubyGems API key"},
	{"~/.m2/settings.xml", File, "Maven repository passwords"},
	{"~/.gradle/gradle.properties", File, "Gradle repository passwords"},
	{"~/.config/anthropic", Dir, "Anthropic API key store"},
	{"~/.vault-token", File, "HashiCorp Vault token"},
	// Browser profiles: cookies and saved passwords.
	{"~/.mozilla", Dir, "Firefox profiles"},
	{"~/.config/google-chrome", Dir, "Chrome profiles"},
	{"~/.config/chromium", Dir, "Chromium profiles"},
	{"~/.config/BraveSoftware", Dir, "Brave profiles"},
	// Host-wide secrets, readable only when Cordon is started as root.
	{"/etc/shadow", File, "password hashes"},
	{"/etc/gshadow", File, "group password hashes"},
	{"/etc/ssh/ssh_host_rsa_key", File, "SSH host key"},
	{"/etc/ssh/ssh_host_ecdsa_key", File, "SSH host key"},
	{"/etc/ssh/ssh_host_ed25519_key", File, "SSH host key"},
	// Host sockets: daemons that would act for the sandbox. A pathname
	// socket is reachable from any network namespace, so the directories
	// that hold the usual ones are masked whole.
	{"~/.docker/run", Dir, "Docker Desktop socket"},
	{"~/.docker/desktop", Dir, "Docker Desktop socket and settings"},
	{"~/.colima", Dir, "Colima's Docker socket"},
	{"~/.lima", Dir, "Lima VM sockets"},
	{"~/.orbstack", Dir, "OrbStack's Docker socket"},
	{"~/.rd", Dir, "Rancher Desktop's Docker socket"},
	{"/run", Dir, "host sockets (docker, dbus, systemd, ssh-agent)"},
	{"/var/run", Dir, "host sockets (usually a link to /run)"},
}

// Protected are paths inside the workspace that a host tool executes or
// trusts later. They are read-only inside the sandbox even though the
// workspace is writable, and a missing one cannot be created.
var Protected = []Entry{
	{".git/hooks", Dir, "git runs hooks on commit, merge and checkout"},
	{".git/config", File, "core.hooksPath, core.fsmonitor, aliases and filters run commands"},
	{".git/modules", Dir, "submodules' own hooks and config"},
	{".gitmodules", File, "submodule URLs and paths fetched on update"},
	{".husky", Dir, "husky git hooks, run through core.hooksPath"},
	{".pre-commit-config.yaml", File, "pre-commit runs the hooks it lists"},
	{"lefthook.yml", File, "lefthook runs the hooks it lists"},
	{".lefthook.yml", File, "lefthook runs the hooks it lists"},
	{".envrc", File, "direnv runs it on cd"},
	{".vscode", Dir, "VS Code tasks, launch configs and settings"},
	{".idea", Dir, "JetBrains run configurations and settings"},
	{".zed", Dir, "Zed tasks and settings"},
	{".devcontainer", Dir, "initializeCommand runs on the host"},
	{".claude", Dir, "Claude Code settings and hooks"},
	{".mcp.json", File, "MCP servers an agent starts"},
	{".cursor", Dir, "Cursor rules and MCP servers"},
	{".gemini", Dir, "Gemini CLI settings and MCP servers"},
	{".codex", Dir, "Codex CLI configuration"},
	{".aider.conf.yml", File, "aider lint and test commands"},
	{".continue", Dir, "Continue configuration"},
	{".cordon.toml", File, "Cordon's own workspace policy"},
}

// Pinned are workspace directories that hold protected paths. They stay
// writable but cannot be renamed or removed, so a protected path cannot be
// moved aside and recreated. A pinned directory that does not exist is
// protected whole: the sandbox cannot create a git repository's control
// files (run `git init` before the run instead).
var Pinned = []string{".git"}
