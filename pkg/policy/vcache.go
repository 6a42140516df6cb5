package policy

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// virtualCache is topdown.VirtualCache, the per-evaluation cache of rule
// and function results, with one hash map per frame keyed by the whole
// reference instead of OPA's trie of hash maps, one per reference element.
// Lookups are the same; an evaluation of the policies caches about a
// hundred results, and the trie's nodes were a tenth of its allocations.
// It serves one evaluation at a time, not safe for concurrent use; reset
// readies it for the next one, keeping its memory (the engine pools them:
// the cache was a tenth of what an evaluation allocated).
type virtualCache struct {
	// frames are pushed by `with`: each starts empty, and only the top
	// one is read, as in OPA's.
	frames []map[int]*cacheEntry
	// blocks hold the entries, handed out in order: block is the block of
	// the next one, next its index there.
	blocks      [][]cacheEntry
	block, next int
	// refs holds the entries' copies of their references.
	refs []*ast.Term
}

const (
	cacheEntryBlock = 64
	cacheRefsBlock  = 512
	// cacheBlocksKept bounds what reset keeps for the next evaluation: an
	// evaluation of the real policies caches about 70 results, and a rare
	// one caching thousands must not pin them in the engine's pool.
	cacheBlocksKept = 8
)

// cacheEntry is one cached reference; next chains references whose hashes
// collide.
type cacheEntry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
	next      *cacheEntry
}

var _ topdown.VirtualCache = (*virtualCache)(nil)

func newVirtualCache() *virtualCache {
	return &virtualCache{frames: []map[int]*cacheEntry{nil}}
}

func (c *virtualCache) Push() { c.frames = append(c.frames, nil) }

func (c *virtualCache) Pop() {
	c.frames[len(c.frames)-1] = nil
	c.frames = c.frames[:len(c.frames)-1]
}

func (c *virtualCache) find(ref ast.Ref) (*cacheEntry, int) {
	h := ref.Hash()
	for e := c.frames[len(c.frames)-1][h]; e != nil; e = e.next {
		if slices.EqualFunc(e.ref, ref, (*ast.Term).Equal) {
			return e, h
		}
	}
	return nil, h
}

// Get returns the cached value of ref: (value, false) when defined,
// (nil, true) when cached as undefined, (nil, false) when not cached.
func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	e, _ := c.find(ref)
	if e == nil {
		return nil, false
	}
	if e.undefined {
		return nil, true
	}
	return e.value, false
}

// Put caches value for ref; a nil value records that ref is undefined.
func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	e, h := c.find(ref)
	if e == nil {
		top := len(c.frames) - 1
		if c.frames[top] == nil {
			c.frames[top] = make(map[int]*cacheEntry, 64)
		}
		e = c.newEntry()
		e.ref, e.next = c.cloneRef(ref), c.frames[top][h]
		c.frames[top][h] = e
	}
	if value != nil {
		e.value = value
	} else {
		e.undefined = true
	}
}

func (c *virtualCache) newEntry() *cacheEntry {
	if c.block == len(c.blocks) {
		c.blocks = append(c.blocks, make([]cacheEntry, cacheEntryBlock))
	}
	e := &c.blocks[c.block][c.next]
	if c.next++; c.next == cacheEntryBlock {
		c.block, c.next = c.block+1, 0
	}
	return e
}

// cloneRef copies ref: the caller reuses its backing array (a function
// call's cache key).
func (c *virtualCache) cloneRef(ref ast.Ref) ast.Ref {
	if len(c.refs)+len(ref) > cap(c.refs) {
		// The full block stays with the entries that point into it until
		// reset drops them.
		c.refs = make([]*ast.Term, 0, max(cacheRefsBlock, len(ref)))
	}
	start := len(c.refs)
	c.refs = append(c.refs, ref...)
	return ast.Ref(c.refs[start:len(c.refs):len(c.refs)])
}

// reset empties the cache for the next evaluation, dropping every
// reference to this one's terms.
func (c *virtualCache) reset() {
	for i := range c.blocks {
		if i > c.block {
			break
		}
		clear(c.blocks[i])
	}
	c.block, c.next = 0, 0
	if len(c.blocks) > cacheBlocksKept {
		clear(c.blocks[cacheBlocksKept:])
		c.blocks = c.blocks[:cacheBlocksKept]
	}
	if cap(c.refs) > cacheBlocksKept*cacheRefsBlock {
		c.refs = nil
	}
	clear(c.refs[:cap(c.refs)])
	c.refs = c.refs[:0]
	clear(c.frames[0])
	clear(c.frames[1:])
	c.frames = c.frames[:1]
}

// Keys returns the references with a cached value in the top frame.
func (c *virtualCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.frames[len(c.frames)-1] {
		for ; e != nil; e = e.next {
			if e.value != nil {
				keys = append(keys, e.ref)
			}
		}
	}
	return keys
}
