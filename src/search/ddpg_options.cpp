// The DDPG options' checks, apart from the agent so that the run
// configuration (and its fuzzer) do not need libtorch.
#include "search/ddpg.h"
#include "util/error.h"

namespace autoprec::search {

void validate_ddpg_options(const DdpgOptions& o) {
  if (o.state_dim <= 0) fail("ddpg: state_dim must be positive, got {}", o.state_dim);
  if (o.hidden1 <= 0 || o.hidden2 <= 0) fail("ddpg: hidden1 and hidden2 must be positive, got {} and {}", o.hidden1, o.hidden2);
  if (!(o.lr_actor > 0) || !(o.lr_critic > 0)) fail("ddpg: lr_actor and lr_critic must be positive");
  if (o.batch_size <= 0) fail("ddpg: batch_size must be positive, got {}", o.batch_size);
  if (o.replay_capacity < o.batch_size) {
    fail("ddpg: replay_capacity ({}) must be at least batch_size ({})", o.replay_capacity, o.batch_size);
  }
  if (!(o.tau > 0 && o.tau <= 1)) fail("ddpg: tau must be in (0, 1], got {}", o.tau);
  if (!(o.discount >= 0 && o.discount <= 1)) fail("ddpg: discount must be in [0, 1], got {}", o.discount);
  if (!(o.noise_sigma >= 0)) fail("ddpg: noise_sigma must be >= 0, got {}", o.noise_sigma);
  if (!(o.noise_decay > 0 && o.noise_decay <= 1)) fail("ddpg: noise_decay must be in (0, 1], got {}", o.noise_decay);
  if (o.warmup_episodes < 0) fail("ddpg: warmup_episodes must be >= 0, got {}", o.warmup_episodes);
  if (!(o.baseline_momentum >= 0 && o.baseline_momentum < 1)) {
    fail("ddpg: baseline_momentum must be in [0, 1), got {}", o.baseline_momentum);
  }
  if (o.updates_per_step < 0) fail("ddpg: updates_per_step must be >= 0, got {}", o.updates_per_step);
}

}  // namespace autoprec::search
