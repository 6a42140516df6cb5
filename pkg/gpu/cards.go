package gpu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Assignment is the cards a pod holds on its node: whole cards, or a share
// of one card.
type Assignment struct {
	// Cards are card indices, ascending.
	Cards []int
	// Milli is the share held on each card: MilliPerCard for whole cards.
	Milli int64
}

// IsZero reports whether the assignment holds no card (a pod without GPUs).
func (a Assignment) IsZero() bool { return len(a.Cards) == 0 }

// String renders the CardsAnnotation value: "0,1" for whole cards, "2:250"
// for a share.
func (a Assignment) String() string {
	idx := make([]string, len(a.Cards))
	for i, c := range a.Cards {
		idx[i] = strconv.Itoa(c)
	}
	s := strings.Join(idx, ",")
	if a.Milli < MilliPerCard && len(a.Cards) == 1 {
		s += ":" + strconv.FormatInt(a.Milli, 10)
	}
	return s
}

// ParseAssignment reads a CardsAnnotation value.
func ParseAssignment(s string) (Assignment, error) {
	s = strings.TrimSpace(s)
	if idx, share, ok := strings.Cut(s, ":"); ok {
		card, err := strconv.Atoi(idx)
		milli, err2 := strconv.ParseInt(share, 10, 64)
		if err != nil || err2 != nil || card < 0 || milli < 1 || milli >= MilliPerCard {
			return Assignment{}, fmt.Errorf("%s=%q: want <card>:<share 1-999>", CardsAnnotation, s)
		}
		return Assignment{Cards: []int{card}, Milli: milli}, nil
	}
	a := Assignment{Milli: MilliPerCard}
	for _, part := range strings.Split(s, ",") {
		card, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || card < 0 || slices.Contains(a.Cards, card) {
			return Assignment{}, fmt.Errorf("%s=%q: want distinct card indices separated by commas", CardsAnnotation, s)
		}
		a.Cards = append(a.Cards, card)
	}
	slices.Sort(a.Cards)
	return a, nil
}

// Matches reports whether the assignment is one the demand could hold.
func (a Assignment) Matches(d Demand) bool {
	if d.IsShared() {
		return len(a.Cards) == 1 && a.Milli == d.Milli
	}
	return len(a.Cards) == d.Whole && a.Milli == MilliPerCard
}

// PlacedPod is a pod already on a node, for bookkeeping.
type PlacedPod struct {
	// Key names the pod in problems and orders unknown placements.
	Key    string
	Demand Demand
	// Assignment is what the pod holds if known (annotation, or the
	// scheduler's own reservation); nil if not.
	Assignment *Assignment
}

// Cards computes the free share of each of a node's cards from the pods on
// it. Pods with a known assignment are applied first; an assignment that
// does not fit its pod's demand or the node (unknown card, card over-full)
// counts as unknown. Pods with an unknown assignment, e.g. placed by
// another scheduler or annotated by hand, are then placed virtually, in
// key order, as Place would place them, so their demand is never lost; the
// problems say which pods were treated so. Free shares never go negative.
func Cards(cardCount int, pods []PlacedPod) (free []int64, problems []string) {
	free = make([]int64, cardCount)
	for i := range free {
		free[i] = MilliPerCard
	}
	var unknown []PlacedPod
	for _, p := range pods {
		if !p.Demand.IsGPU() {
			continue
		}
		if p.Assignment == nil {
			unknown = append(unknown, p)
			continue
		}
		if err := applyAssignment(free, p.Demand, *p.Assignment); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p.Key, err))
			unknown = append(unknown, p)
		}
	}
	slices.SortFunc(unknown, func(a, b PlacedPod) int { return strings.Compare(a.Key, b.Key) })
	for _, p := range unknown {
		n := NodeState{Free: free}
		if a, ok := n.FirstFit(p.Demand); ok {
			_ = applyAssignment(free, p.Demand, a)
			continue
		}
		// It does not fit: charge what is left, so the node reads full
		// rather than hiding an over-commitment.
		problems = append(problems, fmt.Sprintf("%s: does not fit the node's free cards", p.Key))
		need := p.Demand.GPUMilli()
		for i := range free {
			take := min(free[i], need)
			free[i] -= take
			need -= take
		}
	}
	return free, problems
}

func applyAssignment(free []int64, d Demand, a Assignment) error {
	if !a.Matches(d) {
		return fmt.Errorf("assignment %q does not match the demand", a.String())
	}
	for _, c := range a.Cards {
		if c >= len(free) {
			return fmt.Errorf("card %d does not exist (node has %d)", c, len(free))
		}
		if free[c] < a.Milli {
			return fmt.Errorf("card %d has only %d free", c, free[c])
		}
	}
	for _, c := range a.Cards {
		free[c] -= a.Milli
	}
	return nil
}
