// Uses an installed Boong: generates an event id and checks that it is a UUID.
#include <boong/event.hpp>

#include <iostream>
#include <string>

int main() {
    boong::IdGenerator ids;
    const std::string id = ids.next();
    if (!boong::is_uuid(id)) {
        std::cerr << "consumer: '" << id << "' is not a UUID\n";
        return 1;
    }
    std::cout << "consumer: generated " << id << "\n";
    return 0;
}
