//go:build !linux

package netns

import "os"

// within fails: only Linux has network namespaces (New refuses before).
func within(*os.File, func() error) error { return ErrUnsupported }
