#include <boong/postgres/roles.hpp>

#include "schema.hpp"

namespace boong {

std::vector<std::string> postgres_grants(const PostgresStoreConfig& config, const std::string& schema,
                                         const PostgresRoles& roles) {
    return pg::grant_statements(pg::names_in(schema, config), roles);
}

}  // namespace boong
