package policy

// evalStackFrames × stackFrameBytes is the goroutine stack an evaluation
// starts with. OPA evaluates recursively: the real policies reach about
// 128 KiB of stack (TestEvaluateStackSize). A goroutine starts with a few
// KiB, and the runtime doubles the stack each time it overflows, copying
// every frame so far; an evaluation on a fresh goroutine (an HTTP/2
// request's handler) paid five doublings, each deep in OPA's recursion.
// Profiled in the demo's webhook, that copying was a tenth of its CPU.
// Growing the stack once, while it is shallow, copies almost nothing.
const (
	stackFrameBytes = 64 << 10
	evalStackFrames = 2
)

// growStack makes the calling goroutine's stack at least
// evalStackFrames × stackFrameBytes deep, unless it already is: its frames
// are on the stack only until it returns, and a goroutine's stack does not
// shrink before the next garbage collection.
//
//go:noinline
func growStack(frames int) byte {
	var frame [stackFrameBytes]byte
	if frames > 1 {
		frame[frames] = growStack(frames - 1)
	}
	return frame[frames]
}
