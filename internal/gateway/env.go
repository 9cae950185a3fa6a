package gateway

import (
	"fmt"
	"strings"
)

// ProxyEnv is what common tools need to find the gateway inside: the
// usual proxy variables in both cases, and the tool-specific ones. self is
// the cordon binary, which stands as git's ssh ProxyCommand ("" if its
// path cannot be put in a shell command as is). The JVM's settings go
// after the caller's own javaOpts.
func ProxyEnv(self, javaOpts string) []string {
	httpProxy := fmt.Sprintf("http://127.0.0.1:%d", HTTPPort)
	socks := fmt.Sprintf("socks5h://127.0.0.1:%d", SOCKSPort)
	noProxy := "localhost,127.0.0.1,::1"
	if javaOpts = strings.TrimSpace(javaOpts); javaOpts != "" {
		javaOpts += " "
	}
	env := []string{
		"HTTP_PROXY=" + httpProxy, "http_proxy=" + httpProxy,
		"HTTPS_PROXY=" + httpProxy, "https_proxy=" + httpProxy,
		"ALL_PROXY=" + socks, "all_proxy=" + socks,
		"NO_PROXY=" + noProxy, "no_proxy=" + noProxy,
		// npm and pip read their own settings first.
		"npm_config_proxy=" + httpProxy, "npm_config_https_proxy=" + httpProxy,
		"npm_config_noproxy=" + noProxy,
		"PIP_PROXY=" + httpProxy,
		"CARGO_HTTP_PROXY=" + httpProxy,
		// Node's own fetch and http follow the variables when asked
		// (Node 22.21 and 24 on).
		"NODE_USE_ENV_PROXY=1",
		// The JVM reads only its properties.
		fmt.Sprintf("JAVA_TOOL_OPTIONS=%s-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=%d -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=%d -Dhttp.nonProxyHosts=localhost|127.0.0.1",
			javaOpts, HTTPPort, HTTPPort),
	}
	if self != "" && !strings.ContainsAny(self, " \t\n'\"\\$`;&|<>()*?[]{}~#!") {
		env = append(env, fmt.Sprintf("GIT_SSH_COMMAND=ssh -o ProxyCommand='%s connect %%h %%p'", self))
	}
	return env
}
