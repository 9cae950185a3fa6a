package blast

import "strings"

// place is a file or directory of the home directory that something other
// than the process executes or trusts later.
type place struct {
	path string // "~/"-relative
	kind string
	why  string
	// create: the place matters even when it does not exist yet, because
	// making it is enough (a new ~/.bash_profile shadows ~/.profile).
	// Other missing places are left out of the report.
	create bool
}

// kindNames name the kinds of places.
var kindNames = map[string]string{
	"shell-rc":       "shell start-up file",
	"git-config":     "git configuration",
	"login":          "ssh login and client configuration",
	"editor":         "editor configuration",
	"agent-settings": "AI agent settings",
	"autostart":      "programs started at login",
	"language":       "Python start-up files",
}

// homePlaces are the places of the home directory, by kind. A path may
// hold one '*', matched with filepath.Glob.
var homePlaces = []place{
	{"~/.bashrc", "shell-rc", "bash runs it in every interactive shell", false},
	{"~/.bash_profile", "shell-rc", "bash runs it at login, in place of ~/.profile", true},
	{"~/.bash_login", "shell-rc", "bash runs it at login when there is no ~/.bash_profile", false},
	{"~/.profile", "shell-rc", "login shells run it", true},
	{"~/.bash_logout", "shell-rc", "bash runs it when a login shell exits", false},
	{"~/.zshenv", "shell-rc", "zsh runs it in every shell, scripts included", false},
	{"~/.zprofile", "shell-rc", "zsh runs it at login", false},
	{"~/.zshrc", "shell-rc", "zsh runs it in every interactive shell", false},
	{"~/.zlogin", "shell-rc", "zsh runs it at login", false},
	{"~/.config/fish/config.fish", "shell-rc", "fish runs it in every shell", false},
	{"~/.config/fish/conf.d", "shell-rc", "fish runs every file in it", false},

	{"~/.gitconfig", "git-config", "git runs its aliases, hooksPath, fsmonitor, pager and filters", true},
	{"~/.config/git/config", "git-config", "git runs its aliases, hooksPath, fsmonitor, pager and filters", false},

	{"~/.ssh/authorized_keys", "login", "sshd lets the keys in it log in as you", false},
	{"~/.ssh/config", "login", "ssh runs its ProxyCommand and LocalCommand", false},

	{"~/.vimrc", "editor", "vim runs it", false},
	{"~/.config/nvim", "editor", "Neovim runs its init.lua and plugins", false},
	{"~/.emacs", "editor", "Emacs runs it", false},
	{"~/.emacs.d", "editor", "Emacs runs its init.el", false},
	{"~/.vscode/extensions", "editor", "VS Code loads the extensions in it", false},
	{"~/.config/Code/User", "editor", "VS Code's settings, tasks and keybindings", false},
	{"~/.config/JetBrains", "editor", "JetBrains IDEs' settings and run configurations", false},

	{"~/.claude/settings.json", "agent-settings", "Claude Code runs the hooks it names", false},
	{"~/.claude.json", "agent-settings", "Claude Code starts the MCP servers it names", false},
	{"~/.codex/config.toml", "agent-settings", "Codex CLI starts the MCP servers it names", false},
	{"~/.gemini/settings.json", "agent-settings", "Gemini CLI starts the MCP servers it names", false},
	{"~/.aider.conf.yml", "agent-settings", "aider runs its lint and test commands", false},
	{"~/.cursor/mcp.json", "agent-settings", "Cursor starts the MCP servers it names", false},
	{"~/.continue/config.yaml", "agent-settings", "Continue starts the MCP servers it names", false},
	{"~/.continue/config.json", "agent-settings", "Continue starts the MCP servers it names", false},
	{"~/.config/cordon", "agent-settings", "Cordon's own user policy: the walls of the next run", false},

	{"~/.config/systemd/user", "autostart", "systemd starts the user units enabled in it", true},
	{"~/.config/autostart", "autostart", "the desktop session starts the programs in it at login", false},
	{"~/Library/LaunchAgents", "autostart", "launchd starts the agents in it at login", false},

	{"~/.local/lib/python3*/site-packages", "language", "Python runs the .pth files in it at every start", false},
}

// Kinds of workspace secrets: names and extensions of files that usually
// hold a credential. A .pem counts only when it holds a private key.
var (
	secretNames = map[string]string{
		".env":                 "environment file",
		"id_rsa":               "SSH private key",
		"id_dsa":               "SSH private key",
		"id_ecdsa":             "SSH private key",
		"id_ed25519":           "SSH private key",
		"credentials.json":     "credentials file",
		"service-account.json": "service-account key",
		".npmrc":               "npm config (registry tokens)",
		".pypirc":              "PyPI config (upload tokens)",
		".netrc":               "netrc (passwords)",
		".git-credentials":     "git credential store",
		".dockercfg":           "Docker registry auths",
		".vault-token":         "Vault token",
	}
	secretExts = map[string]string{
		".pem":      "PEM private key",
		".key":      "private key",
		".p12":      "PKCS#12 key store",
		".pfx":      "PKCS#12 key store",
		".jks":      "Java key store",
		".keystore": "key store",
	}
	// envTemplates end the names of .env files that are templates, with
	// no values to steal.
	envTemplates = []string{".example", ".sample", ".template", ".dist", ".defaults"}
	// skipDirs are not walked: vendored and generated trees, large and
	// full of fixtures.
	skipDirs = map[string]bool{
		".git": true, "node_modules": true, "vendor": true, ".venv": true, "venv": true,
		"__pycache__": true, "target": true, ".tox": true, ".cache": true, ".terraform": true,
	}
)

// secretKind returns what a workspace file of this name holds, or "".
func secretKind(name string) string {
	if k, ok := secretNames[name]; ok {
		return k
	}
	if rest, ok := strings.CutPrefix(name, ".env."); ok && rest != "" {
		for _, t := range envTemplates {
			if strings.HasSuffix(name, t) {
				return ""
			}
		}
		return "environment file"
	}
	for ext, k := range secretExts {
		if strings.HasSuffix(name, ext) && len(name) > len(ext) {
			return k
		}
	}
	return ""
}

// Socket is a well-known unix socket of a daemon that acts for whoever
// connects.
type Socket struct {
	Path   string  // absolute, or "~/"-relative
	Name   string  // the daemon
	Weight float64 // its weight among the host's sockets and processes
	Note   string  // what connecting gives
}

// rootEquivalent is the weight of a socket that gives root on the host to
// whoever can connect.
const rootEquivalent = 3

// DefaultSockets are the daemons' sockets Compute looks for, besides those
// in $XDG_RUNTIME_DIR, $SSH_AUTH_SOCK and /tmp/.X11-unix.
var DefaultSockets = []Socket{
	{"/var/run/docker.sock", "Docker daemon", rootEquivalent, "starting a privileged container is root on the host"},
	{"/run/docker.sock", "Docker daemon", rootEquivalent, "starting a privileged container is root on the host"},
	{"/run/containerd/containerd.sock", "containerd", rootEquivalent, "starting a privileged container is root on the host"},
	{"/run/podman/podman.sock", "Podman (root)", rootEquivalent, "starting a privileged container is root on the host"},
	{"/var/lib/lxd/unix.socket", "LXD", rootEquivalent, "a privileged container is root on the host"},
	{"/var/snap/lxd/common/lxd/unix.socket", "LXD", rootEquivalent, "a privileged container is root on the host"},
	{"/run/libvirt/libvirt-sock", "libvirt", rootEquivalent, "a VM with the host's disks attached"},
	{"/run/dbus/system_bus_socket", "D-Bus system bus", 1, "system services, polkit, systemd"},
	{"/run/snapd.socket", "snapd", 1, "installs and runs snaps"},
	{"~/.docker/run/docker.sock", "Docker Desktop", rootEquivalent, "containers with the home directory mounted"},
	{"~/.colima/default/docker.sock", "Colima Docker", rootEquivalent, "containers with the home directory mounted"},
	{"~/.orbstack/run/docker.sock", "OrbStack Docker", rootEquivalent, "containers with the home directory mounted"},
	{"~/.rd/docker.sock", "Rancher Desktop Docker", rootEquivalent, "containers with the home directory mounted"},
}
