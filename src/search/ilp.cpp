#include "search/ilp.h"

#include <glpk.h>

#include <cmath>
#include <memory>
#include <stdexcept>

#include "util/error.h"

namespace autoprec::search {
namespace {

struct GlpDeleter {
  void operator()(glp_prob* p) const { glp_delete_prob(p); }
};

// Silences GLPK's terminal output for the lifetime of the guard.
class TermOutGuard {
 public:
  TermOutGuard() : previous_(glp_term_out(GLP_OFF)) {}
  ~TermOutGuard() { glp_term_out(previous_); }

 private:
  int previous_;
};

std::string resource_list(const ChoiceProblem& problem) {
  std::string out;
  for (const Resource& r : problem.resources) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} <= {:.6g}{}", r.name, r.budget, r.unit.empty() ? "" : " " + r.unit);
  }
  return out;
}

}  // namespace

IlpResult solve_ilp(const ChoiceProblem& problem, const IlpOptions& options) {
  validate(problem);
  check_reachable(problem);
  TermOutGuard quiet;
  std::unique_ptr<glp_prob, GlpDeleter> lp(glp_create_prob());
  glp_set_obj_dir(lp.get(), GLP_MIN);

  // Columns: one binary per (layer, option).
  std::vector<int> first_column(problem.layers.size());
  int columns = 0;
  for (size_t l = 0; l < problem.layers.size(); ++l) {
    first_column[l] = columns + 1;
    columns += static_cast<int>(problem.layers[l].options.size());
  }
  glp_add_cols(lp.get(), columns);
  for (size_t l = 0; l < problem.layers.size(); ++l) {
    for (size_t o = 0; o < problem.layers[l].options.size(); ++o) {
      int j = first_column[l] + static_cast<int>(o);
      glp_set_col_kind(lp.get(), j, GLP_BV);
      glp_set_obj_coef(lp.get(), j, problem.layers[l].options[o].sensitivity);
    }
  }

  // Rows and the sparse matrix (GLPK arrays are 1-based; index 0 unused).
  std::vector<int> ia{0}, ja{0};
  std::vector<double> ar{0.0};
  int rows = 0;
  for (size_t l = 0; l < problem.layers.size(); ++l) {
    ++rows;
    glp_add_rows(lp.get(), 1);
    glp_set_row_bnds(lp.get(), rows, GLP_FX, 1.0, 1.0);
    for (size_t o = 0; o < problem.layers[l].options.size(); ++o) {
      ia.push_back(rows);
      ja.push_back(first_column[l] + static_cast<int>(o));
      ar.push_back(1.0);
    }
  }
  for (size_t k = 0; k < problem.resources.size(); ++k) {
    double budget = problem.resources[k].budget;
    if (std::isinf(budget) && budget > 0) continue;
    double scale = budget > 0 ? budget : 1.0;
    ++rows;
    glp_add_rows(lp.get(), 1);
    glp_set_row_bnds(lp.get(), rows, GLP_UP, 0.0, budget / scale);
    for (size_t l = 0; l < problem.layers.size(); ++l) {
      for (size_t o = 0; o < problem.layers[l].options.size(); ++o) {
        double c = problem.layers[l].options[o].costs[k];
        if (c == 0) continue;
        ia.push_back(rows);
        ja.push_back(first_column[l] + static_cast<int>(o));
        ar.push_back(c / scale);
      }
    }
  }
  glp_load_matrix(lp.get(), static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());

  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_ON;
  parm.tm_lim = static_cast<int>(std::min(options.time_limit_seconds * 1000.0, 2.0e9));
  parm.mip_gap = options.mip_gap;
  int rc = glp_intopt(lp.get(), &parm);
  int status = glp_mip_status(lp.get());
  bool have_solution = status == GLP_OPT || status == GLP_FEAS;
  if (rc == GLP_ENOPFS || status == GLP_NOFEAS || (!have_solution && rc != GLP_ETMLIM)) {
    fail("infeasible: no precision choice meets every budget together ({}), although each is reachable on its own",
         resource_list(problem));
  }
  if (!have_solution) {
    fail("precision search: the integer program found no feasible choice within {} s ({})",
         options.time_limit_seconds, resource_list(problem));
  }

  IlpResult result;
  result.optimal = rc == 0 && status == GLP_OPT && options.mip_gap == 0;
  result.choice.resize(problem.layers.size(), -1);
  for (size_t l = 0; l < problem.layers.size(); ++l) {
    double best = -1;
    for (size_t o = 0; o < problem.layers[l].options.size(); ++o) {
      double v = glp_mip_col_val(lp.get(), first_column[l] + static_cast<int>(o));
      if (v > best) {
        best = v;
        result.choice[l] = static_cast<int>(o);
      }
    }
  }
  result.objective = total_sensitivity(problem, result.choice);
  result.totals = totals(problem, result.choice);
  if (!is_feasible(problem, result.choice)) {
    throw InternalError("solve_ilp: GLPK returned a choice that violates a budget");
  }
  return result;
}

}  // namespace autoprec::search
