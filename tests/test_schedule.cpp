// Learning-rate schedules, gradient clipping and the non-finite step guard.
#include "config/config.h"
#include "core/check.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/step_guard.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace sp;

namespace {

Config schedule(const std::string& name, int64_t warmup, int64_t steps) {
  Config c;
  c.optimizer.lr = 1.0;
  c.lr_scheduler.name = name;
  c.lr_scheduler.warmup_steps = warmup;
  c.lr_scheduler.lr_min = 0.1;
  c.lr_scheduler.decay_ratio = 0.2;
  c.training.steps = steps;
  return c;
}

}  // namespace

TEST_CASE("warmup is linear from lr/warmup to lr", "[unit]") {
  for (auto name : {"cosine", "wsd", "constant"}) {
    Config c = schedule(name, 10, 100);
    CHECK(learning_rate(c, 0) == Approx(0.1));
    CHECK(learning_rate(c, 4) == Approx(0.5));
    CHECK(learning_rate(c, 9) == Approx(1.0));
  }
}

TEST_CASE("cosine decays from lr to lr_min x lr", "[unit]") {
  Config c = schedule("cosine", 10, 110);
  CHECK(learning_rate(c, 10) == Approx(1.0));
  CHECK(learning_rate(c, 60) == Approx(0.55));  // halfway: the mean of 1 and 0.1
  CHECK(learning_rate(c, 110) == Approx(0.1));
  for (int64_t s = 11; s < 110; ++s) CHECK(learning_rate(c, s) < learning_rate(c, s - 1));
}

TEST_CASE("WSD holds the peak, then decays linearly over the last decay_ratio", "[unit]") {
  Config c = schedule("wsd", 10, 110);  // decay over the last 22 steps: 88 .. 110
  CHECK(learning_rate(c, 50) == Approx(1.0));
  CHECK(learning_rate(c, 87) == Approx(1.0));
  CHECK(learning_rate(c, 99) == Approx(1.0 - 0.9 * 11.0 / 22.0));
  CHECK(learning_rate(c, 110) == Approx(0.1));
}

TEST_CASE("constant stays at lr", "[unit]") {
  Config c = schedule("constant", 5, 50);
  CHECK(learning_rate(c, 5) == 1.0);
  CHECK(learning_rate(c, 49) == 1.0);
}

TEST_CASE("clipping factor", "[unit]") {
  CHECK(clip_scale(0.5, 1.0) == 1.0);
  CHECK(clip_scale(4.0, 1.0) == 0.25);
  CHECK(clip_scale(4.0, 0.0) == 1.0);  // max_norm 0: no clipping
}

TEST_CASE("non-finite steps are skipped, counted, and end the run when they persist", "[unit]") {
  NonFiniteGuard g(3);
  CHECK(g.accept(2.0, 1.0));
  CHECK(!g.accept(NAN, 1.0));
  CHECK(!g.accept(2.0, INFINITY));
  CHECK(g.consecutive() == 2);
  CHECK(g.accept(2.0, 1.0));  // a good step resets the run of skips, not the total
  CHECK(g.consecutive() == 0);
  CHECK(g.total_skipped() == 2);
  CHECK(!g.accept(NAN, NAN));
  CHECK(!g.accept(NAN, NAN));
  try {
    g.accept(NAN, NAN);
    FAIL("expected the run to end");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("training.max_skipped_steps"));
  }
}
