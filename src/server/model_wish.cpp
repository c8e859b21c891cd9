// model_wish_of_body(): the two top-level fields that choose a request's model, read with a
// SAX pass that keeps nothing else (the route parses the body again, once it has the model).
#include <cstdint>
#include <string>

#include "server/api_errors.h"
#include "server/model_host.h"

namespace pensieve::server {

namespace {

class WishReader : public nlohmann::json_sax<json> {
public:
    json model, keep_alive;  // null: absent

    bool null() override { return value(json(nullptr)); }
    bool boolean(bool v) override { return value(json(v)); }
    bool number_integer(number_integer_t v) override { return value(json(v)); }
    bool number_unsigned(number_unsigned_t v) override { return value(json(v)); }
    bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
    bool string(string_t& v) override { return value(json(v)); }
    bool binary(binary_t&) override { return value(json(nullptr)); }
    bool start_object(std::size_t) override { return open(); }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_array() override { return close(); }
    bool key(string_t& k) override {
        if (depth_ == 1) key_ = k;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        failed = true;
        return false;
    }
    bool failed = false;

private:
    bool value(json v) {
        if (depth_ == 1) take(std::move(v));
        return true;
    }
    bool open() {
        if (depth_ == 1) take(json("<structured>"), true);
        ++depth_;
        return true;
    }
    bool close() {
        --depth_;
        return true;
    }
    void take(json v, bool structured = false) {
        if (key_ == "model") model = structured ? json::object() : std::move(v);
        else if (key_ == "keep_alive") keep_alive = structured ? json::object() : std::move(v);
        key_.clear();
    }
    int depth_ = 0;
    std::string key_;
};

}  // namespace

ModelWish model_wish_of_body(const std::string& body) {
    ModelWish w;
    if (body.empty()) return w;
    WishReader r;
    json::sax_parse(body, &r);
    if (r.failed) return {};
    if (!r.model.is_null()) {
        if (!r.model.is_string()) throw ApiError(400, "model must be a string", "model");
        w.model = r.model.get<std::string>();
    }
    if (!r.keep_alive.is_null()) w.keep_alive_seconds = parse_keep_alive(r.keep_alive);
    return w;
}

}  // namespace pensieve::server
