package client

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// MarshalJSON writes d as Go's duration text.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON takes a duration text ("90s", "1h30m") or a number of
// seconds. Negative durations are an error.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a duration such as \"90s\" or \"15m\"", s)
		}
		if v < 0 {
			return fmt.Errorf("duration %q: negative", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string such as \"90s\" or a number of seconds")
	}
	if secs < 0 || math.IsNaN(secs) || secs > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("duration %v: out of range", secs)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
