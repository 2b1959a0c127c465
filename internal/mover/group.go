package mover

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// The layered format (docs/mover-contract.md, "Layered artifacts") cuts the
// files, in walk order, into groups; each group is one layer.
const (
	// MaxLayers is the most layers a layered manifest has. Docker's and
	// containerd's overlay storage refuse images deeper than about 125-128 layers, so
	// 127 is what every tool that may treat the artifact as an image accepts; a
	// registry's manifest size limit (4 MiB in distribution) allows thousands.
	MaxLayers = 127
	// groupsPerTree is the number of groups a tree is cut into on average when its
	// size, not DefaultGroupBytes, sets the group size: half of MaxLayers leaves
	// room for large files alone in their groups and for chance.
	groupsPerTree = 64
	// DefaultGroupBytes is the average group size of trees up to 64 times as large
	// (docs/benchmarks.md, "Layered backups": the size that balanced requests
	// against re-uploaded bytes).
	DefaultGroupBytes = 4 << 20
	// tarBlock is the tar block size; every entry costs at least one header block.
	tarBlock = 512
)

// entryWeight is what an entry adds to its group: its tar header and its
// content padded to whole blocks.
func entryWeight(size int64) int64 {
	return tarBlock + (size+tarBlock-1)/tarBlock*tarBlock
}

// cutAfter decides whether a group ends after the entry at path: with
// probability weight/target, decided by the hash of the path alone. The decision
// depends on nothing but the entry, so adding, deleting or changing one file
// adds, removes or moves at most one boundary, and the groups around it keep
// their entries and so their fingerprints and layers. An entry as large as the
// target always ends its group (and starts one, see startsGroup): a large file
// is alone in its layer.
func cutAfter(path string, weight, target int64) bool {
	if weight >= target {
		return true
	}
	sum := sha256.Sum256([]byte(path))
	// hi = floor(h * target / 2^64) is uniform in [0, target).
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(target))
	return hi < uint64(weight)
}

// startsGroup says whether an entry of this weight starts a new group: large
// entries do, so that they are alone.
func startsGroup(weight, target int64) bool { return weight >= target }

// groupTarget is the average group size for a tree of about treeBytes of
// entries (their weights): DefaultGroupBytes, or more for a tree that would
// otherwise need more than groupsPerTree groups. previous is the size the
// previous backup used: it is kept while it still gives at most
// MaxLayers*7/8 groups, since a new size moves most boundaries and so
// re-uploads most of the tree.
func groupTarget(treeBytes, previous, minimum int64) int64 {
	if minimum <= 0 {
		minimum = DefaultGroupBytes
	}
	if previous >= minimum && treeBytes/previous <= MaxLayers*7/8 {
		return previous
	}
	t := max(minimum, treeBytes/groupsPerTree)
	// Whole 64 KiB units: a small change in the tree's size keeps the size.
	const unit = 64 << 10
	return (t + unit - 1) / unit * unit
}
