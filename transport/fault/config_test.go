package fault_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/transport/fault"
)

func setRules() fault.Rules {
	return fault.Rules{DropRate: 0.1, DuplicateRate: 0.2, ReorderRate: 0.3, ReorderWindow: time.Millisecond,
		Delay: 2 * time.Millisecond, Jitter: 3 * time.Millisecond}
}

func badRules() fault.Rules {
	return fault.Rules{DropRate: 1.5, DuplicateRate: -0.1, ReorderRate: 2, ReorderWindow: -1, Delay: -time.Second, Jitter: -2}
}

var badRulesWant = []string{"DropRate = 1.5", "DuplicateRate = -0.1", "ReorderRate = 2", "ReorderWindow = -1ns",
	"Delay = -1s", "Jitter = -2ns"}

// Rules and Config follow the config contract (internal/configtest).
func TestConfig_ConfigShape(t *testing.T) {
	t.Run("Rules", func(t *testing.T) {
		configtest.Check(t, configtest.Case[fault.Rules]{
			Sentinel:       fault.ErrInvalidConfig,
			EnsureDefaults: (*fault.Rules).EnsureDefaults,
			Validate:       (*fault.Rules).Validate,
			Required:       func() fault.Rules { return fault.Rules{} },
			Set:            setRules,
			Bad:            badRules,
			Want:           badRulesWant,
		})
	})
	t.Run("Config", func(t *testing.T) {
		configtest.Check(t, configtest.Case[fault.Config]{
			Sentinel:       fault.ErrInvalidConfig,
			EnsureDefaults: (*fault.Config).EnsureDefaults,
			Validate:       (*fault.Config).Validate,
			Required:       func() fault.Config { return fault.Config{ID: 1} },
			Set: func() fault.Config {
				return fault.Config{ID: 1, Seed: 9, Network: fault.NewNetwork(), Rules: setRules()}
			},
			Bad:  func() fault.Config { return fault.Config{Rules: badRules()} },
			Want: append([]string{"ID = 0"}, badRulesWant...),
		})
	})
}

// The defaults the contract test cannot see: a reorder rate without a
// window gets DefaultReorderWindow (and no rate, none); a NaN rate is
// refused; Wrap and SetRules apply defaults and checks alike, and Wrap
// refuses a nil inner transport.
func TestRules_DefaultsAndChecks(t *testing.T) {
	r := fault.Rules{ReorderRate: 0.5}
	r.EnsureDefaults()
	if r.ReorderWindow != fault.DefaultReorderWindow {
		t.Errorf("ReorderWindow default = %v, want %v", r.ReorderWindow, fault.DefaultReorderWindow)
	}
	r = fault.Rules{}
	if r.EnsureDefaults(); r != (fault.Rules{}) {
		t.Errorf("EnsureDefaults filled rules that ask for no fault: %+v", r)
	}
	if err := (&fault.Rules{DropRate: math.NaN()}).Validate(); !errors.Is(err, fault.ErrInvalidConfig) {
		t.Errorf("NaN DropRate: Validate = %v", err)
	}
	w, _ := wrap(t, 1, 1, nil, fault.Rules{ReorderRate: 0.5})
	if got := w.Rules().ReorderWindow; got != fault.DefaultReorderWindow {
		t.Errorf("Wrap: ReorderWindow = %v, want the default", got)
	}
	if err := w.SetRules(fault.Rules{ReorderRate: 0.25}); err != nil || w.Rules().ReorderWindow != fault.DefaultReorderWindow {
		t.Errorf("SetRules: %v, ReorderWindow %v", err, w.Rules().ReorderWindow)
	}
	if err := w.SetRules(badRules()); len(configtest.Violations(err)) != len(badRulesWant) {
		t.Errorf("SetRules(bad) = %v, want %d violations", err, len(badRulesWant))
	}
	if w.Rules().ReorderRate != 0.25 {
		t.Errorf("a refused SetRules changed the rules: %+v", w.Rules())
	}
	if _, err := fault.Wrap(nil, fault.Config{ID: 1}); !errors.Is(err, fault.ErrInvalidConfig) {
		t.Errorf("Wrap(nil) = %v", err)
	}
	if _, err := fault.Wrap(&fake{}, fault.Config{Rules: badRules()}); len(configtest.Violations(err)) != 1+len(badRulesWant) {
		t.Errorf("Wrap(bad) = %v, want %d violations", err, 1+len(badRulesWant))
	}
}

// The wrapper reports its inner transport's frame limit, which is the
// limit every message it lets through meets.
func TestMaxFrameSize_IsTheInnerTransports(t *testing.T) {
	w, in := wrap(t, 1, 1, nil, fault.Rules{})
	if got, want := w.MaxFrameSize(), in.MaxFrameSize(); got != want {
		t.Errorf("MaxFrameSize() = %d, want the inner transport's %d", got, want)
	}
}
