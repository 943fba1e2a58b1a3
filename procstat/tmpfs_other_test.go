//go:build !linux

package procstat

func onTmpfs(string) bool { return false }
