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
	DefaultGroupBytes = 2 << 20
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

// treeWeights is what an lstat-only walk learns of a tree to choose its group
// size: the total weight of its entries and the weights of those of at least
// the minimum group size (large files, each alone in a group when at least the group size).
type treeWeights struct {
	total int64
	large []int64
}

// groupTarget is the average group size for a tree: the smallest (in whole 64
// KiB) of at least minimum (DefaultGroupBytes when 0) for which the tree makes
// at most groupsPerTree groups on average: its small entries' weight / T, plus
// one group per entry of at least T. The large files do not shrink the groups
// of the small ones, where most changes are.
func groupTarget(w treeWeights, minimum int64) int64 {
	if minimum <= 0 {
		minimum = DefaultGroupBytes
	}
	const unit = 64 << 10
	groups := func(t int64) int64 {
		small, n := w.total, int64(0)
		for _, l := range w.large {
			if l >= t {
				small, n = small-l, n+1
			}
		}
		return (small+t-1)/t + n
	}
	// groups never grows with t: an entry reaching t adds one group and takes
	// at least t from the small ones.
	lo, hi := (minimum+unit-1)/unit, max((w.total+unit-1)/unit, 1)
	for lo < hi {
		mid := (lo + hi) / 2
		if groups(mid*unit) <= groupsPerTree {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo * unit
}

// keepTarget says whether a backup keeps the previous backup's group size:
// while that made at most MaxLayers*7/8 layers and is not below the minimum,
// since a new size moves most boundaries and so re-uploads most of the tree.
func keepTarget(previous int64, previousLayers int, minimum int64) bool {
	if minimum <= 0 {
		minimum = DefaultGroupBytes
	}
	return previous >= minimum && previousLayers <= MaxLayers*7/8
}
