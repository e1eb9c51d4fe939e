package agent

// WithoutSource returns c without the record of the file it was read from,
// so that tests can compare a parsed Config with one made in Go.
func WithoutSource(c Config) Config {
	c.src = nil
	return c
}
