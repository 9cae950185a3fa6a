package blast

// partDef is one part of the score.
type partDef struct {
	name, title string
	weight      float64
	explain     string
}

// parts are the parts of the score, in the order reports show them. Their
// weights add up to 100.
var parts = []partDef{
	{"credentials", "Credentials", 30,
		"real secrets a process can read: credential stores of the home directory and /etc, secret-looking environment variables, key and .env files in the workspace"},
	{"persistence", "Places run or trusted later", 20,
		"files and directories a process can write that something else executes or trusts later: shell start-up files, git hooks and config, editor tasks, agent settings, autostart units, directories on $PATH"},
	{"network", "Network", 20,
		"where a process can send data: the internet, the local network and cloud metadata, DNS, services listening on this host, raw sockets"},
	{"sockets", "Host sockets and processes", 15,
		"daemons that act for whoever connects (Docker, ssh-agent, D-Bus, the user's session sockets) and other processes of this user that a process could signal or trace"},
	{"privileges", "Privileges", 10,
		"capabilities held, setuid and setgid programs, sudo"},
	{"resources", "Resource ceilings", 5,
		"memory, processes, CPU and time a process can take from the host"},
}

// Method says how the scores are computed; it is the report's own account
// (the package comment says the same).
const Method = "Each asset has a reach from 0 (out of reach) to 1 (fully in reach), once without a sandbox and once inside one with this policy, " +
	"and a weight within its part. A part gives its weight times the weighted mean of its assets' reach (0 when this host has none of them). " +
	"The score is the sum over the parts: 0 when nothing is in reach, 100 when everything this host has is. " +
	"Weights of the parts: credentials 30, places run or trusted later 20, network 20, host sockets and processes 15, privileges 10, resource ceilings 5."

// score fills r.Parts and r.Score from r.Assets.
func score(r *Report) {
	var total [2]float64
	r.Parts = r.Parts[:0]
	for _, d := range parts {
		var sumW float64
		var sum [2]float64
		n := 0
		for _, a := range r.Assets {
			if a.Part != d.name {
				continue
			}
			n++
			sumW += a.Weight
			sum[0] += a.Weight * clamp(a.NoSandbox.Level)
			sum[1] += a.Weight * clamp(a.Policy.Level)
		}
		p := Part{Name: d.name, Title: d.title, Weight: d.weight, Assets: n, Explain: d.explain}
		if sumW > 0 {
			p.NoSandbox = d.weight * sum[0] / sumW
			p.Policy = d.weight * sum[1] / sumW
		}
		total[0] += p.NoSandbox
		total[1] += p.Policy
		p.NoSandbox, p.Policy = round1(p.NoSandbox), round1(p.Policy)
		r.Parts = append(r.Parts, p)
	}
	r.Score = Score{NoSandbox: round1(total[0]), Policy: round1(total[1]), Method: Method}
}

func clamp(x float64) float64 {
	switch {
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}
