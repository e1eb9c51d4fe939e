package agent

// SourcesDone reports whether every camera's source has ended (a video file
// or image folder that does not loop reached its last frame). Live cameras
// never end, so for them it stays false.
func (a *Agent) SourcesDone() bool {
	for _, c := range a.cams {
		if !c.done.Load() {
			return false
		}
	}
	return len(a.cams) > 0
}
