// The ResultStore's schema as a list of migrations. Migration N takes a
// database at user_version N-1 to N; a new database runs them all. A released
// migration is never edited: change the schema by appending one.
#pragma once

#include <string>
#include <vector>

namespace kab::store {

struct Migration {
  int version;              // user_version after this migration
  std::string description;
  std::string sql;          // statements run inside the migrating transaction
};

const std::vector<Migration>& migrations();

}  // namespace kab::store
