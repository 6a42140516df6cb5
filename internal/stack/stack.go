// Package stack grows a goroutine's stack ahead of deep recursion.
//
// A goroutine starts with a few KiB of stack, and the runtime doubles it
// each time it overflows, copying every frame so far. Code that recurses
// deeply on a fresh goroutine (an HTTP/2 request's handler decoding an
// admission review, then evaluating Rego) pays every doubling deep in its
// recursion, where the copies are largest. Growing the stack once, while
// it is shallow, copies almost nothing; the grown stack stays until a
// garbage collection finds it mostly unused.
package stack

const frameBytes = 16 << 10

// Grow makes the calling goroutine's stack hold at least n bytes beyond
// its current depth. It costs clearing n bytes when the stack is already
// that deep.
func Grow(n int) {
	if frames := n / frameBytes; frames > 0 {
		grow(frames)
	}
}

// grow recurses through frames frames of frameBytes each. The frame's
// contents are read so the compiler keeps it.
//
//go:noinline
func grow(frames int) byte {
	var frame [frameBytes]byte
	if frames > 1 {
		frame[frames%frameBytes] = grow(frames - 1)
	}
	return frame[frames%frameBytes]
}
