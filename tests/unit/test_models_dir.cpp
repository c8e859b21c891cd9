// `serve --models-dir`: the catalog of a folder of real models (../shared/models), loading
// on demand, keep-alive, eviction under --max-models / --max-ram, waiting for a loading or
// busy model, the 404 that names the known models, aliases and the default, and /v1/models
// and /metrics over several models. About 2 s.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "gguf/gguf.h"
#include "server/api_errors.h"
#include "server/model_catalog.h"
#include "server/model_host.h"
#include "server_harness.h"

namespace pensieve::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace pensieve::test_server;

// A folder of links to the shared models: stories260K and synth-tiny-Q4_0 at the top,
// qwen2 and bert in a sub-folder, one file that is not a GGUF, and models.json.
struct ModelsFolder {
    fs::path dir;
    explicit ModelsFolder(const std::string& tag, const std::string& models_json =
                                                      R"({"aliases": {"gpt-4o": "stories260K"}, "default": "stories260K"})") {
        dir = fs::temp_directory_path() / ("pensieve-models-" + tag + "-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir / "more");
        const std::string m = shared_dir() + "/models/";
        fs::create_symlink(m + "stories260K.gguf", dir / "stories260K.gguf");
        fs::create_symlink(m + "synth-tiny-Q4_0.gguf", dir / "synth-tiny-Q4_0.gguf");
        fs::create_symlink(m + "arch/qwen2.gguf", dir / "more" / "qwen2.gguf");
        fs::create_symlink(m + "arch/bert.gguf", dir / "more" / "bert.gguf");
        std::ofstream(dir / "notes.gguf") << "not a model";
        fs::create_symlink(m + "arch/qwen3.gguf", dir / "big-00001-of-00002.gguf");  // a split model's part
        std::ofstream(dir / ".partial.gguf") << "a download in progress";
        if (!models_json.empty()) std::ofstream(dir / "models.json") << models_json;
    }
    ~ModelsFolder() { fs::remove_all(dir); }
};

TEST(ModelCatalog, ListsTheFolderWithFactsAliasesAndTheDefault) {
    ModelsFolder f("catalog");
    ModelCatalog c = ModelCatalog::folder(f.dir.string());
    EXPECT_EQ(c.names(), (std::vector<std::string>{"bert", "qwen2", "stories260K", "synth-tiny-Q4_0"}));
    CatalogEntry e;
    ASSERT_TRUE(c.find("gpt-4o", e));  // the alias
    EXPECT_EQ(e.name, "stories260K");
    EXPECT_EQ(e.architecture, "llama");
    EXPECT_EQ(e.bytes, fs::file_size(shared_dir() + "/models/stories260K.gguf"));
    EXPECT_EQ(e.aliases, std::vector<std::string>{"gpt-4o"});
    ASSERT_TRUE(c.find("synth-tiny-Q4_0", e));
    EXPECT_EQ(e.quantization, "Q4_0");
    EXPECT_EQ(e.context_length, 2048);
    ASSERT_TRUE(c.find("qwen2", e));
    EXPECT_EQ(e.architecture, "qwen2");
    EXPECT_EQ(e.path, (f.dir / "more" / "qwen2.gguf").string());
    EXPECT_FALSE(c.find("notes", e));
    // notes.gguf and the split part, with their reasons; the hidden file is not looked at.
    const std::vector<SkippedFile> skipped = c.skipped();
    ASSERT_EQ(skipped.size(), 2u);
    EXPECT_NE(skipped[0].path.find("big-00001-of-00002.gguf"), std::string::npos);
    EXPECT_NE(skipped[0].reason.find("split GGUF"), std::string::npos) << skipped[0].reason;
    EXPECT_NE(skipped[1].reason.find("not a GGUF"), std::string::npos) << skipped[1].reason;
    EXPECT_EQ(c.default_name(), "stories260K");
}

TEST(ModelCatalog, RescanSeesNewAndRemovedFilesAndNamesClashesByFolder) {
    ModelsFolder f("rescan", "");
    ModelCatalog c = ModelCatalog::folder(f.dir.string());
    EXPECT_EQ(c.default_name(), "");  // four models, no models.json
    fs::create_directories(f.dir / "other");
    fs::create_symlink(shared_dir() + "/models/arch/qwen3.gguf", f.dir / "other" / "qwen2.gguf");  // same stem
    fs::remove(f.dir / "synth-tiny-Q4_0.gguf");
    c.rescan();
    EXPECT_EQ(c.names(), (std::vector<std::string>{"bert", "more/qwen2", "other/qwen2", "stories260K"}));
    CatalogEntry e;
    ASSERT_TRUE(c.find("other/qwen2", e));
    EXPECT_EQ(e.architecture, "qwen3");
    EXPECT_THROW(ModelCatalog::folder((f.dir / "missing").string()), Error);
    std::ofstream(f.dir / "models.json") << R"({"aliases": {"x": 3}})";
    EXPECT_THROW(ModelCatalog::folder(f.dir.string()), Error);
}

TEST(KeepAlive, ReadsSecondsAndDurationsAsTheOtherLocalServersAccept) {
    EXPECT_DOUBLE_EQ(parse_keep_alive(json(10)), 10);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json(-1)), -1);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("5m")), 300);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("1h30m")), 5400);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("1.5s")), 1.5);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("250ms")), 0.25);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("-1m")), -60);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("30")), 30);
    EXPECT_DOUBLE_EQ(parse_keep_alive(json("0")), 0);
    for (const json& bad : {json("5x"), json("m"), json(""), json("5m3"), json(true), json::array()})
        EXPECT_THROW(parse_keep_alive(bad), ApiError) << bad.dump();
}

TEST(ModelWishOfBody, ReadsTheTopLevelFieldsOnly) {
    ModelWish w = model_wish_of_body(R"({"messages": [{"model": "inner"}], "model": "qwen2", "keep_alive": "2m"})");
    EXPECT_EQ(w.model, "qwen2");
    EXPECT_DOUBLE_EQ(*w.keep_alive_seconds, 120);
    w = model_wish_of_body(R"({"tools": {"model": {"model": "x"}}})");
    EXPECT_EQ(w.model, "");
    EXPECT_FALSE(w.keep_alive_seconds);
    EXPECT_EQ(model_wish_of_body("{not json").model, "");  // the route reports the syntax error
    EXPECT_EQ(model_wish_of_body(std::string(100000, '[')).model, "");  // deep nesting: no recursion
    EXPECT_THROW(model_wish_of_body(R"({"model": 3})"), ApiError);
    EXPECT_THROW(model_wish_of_body(R"({"model": "a", "keep_alive": "soon"})"), ApiError);
}

// A host over the folder, with the options a test gives.
struct Host {
    ServerOptions options;
    std::unique_ptr<ModelHost> host;
    explicit Host(const ModelsFolder& f, HostOptions h) {
        options.n_ctx = 256;
        options.n_parallel = 1;
        options.log_requests = false;
        host = std::make_unique<ModelHost>(options);
        h.threads = 1;
        host->serve_folder(ModelCatalog::folder(f.dir.string()), h);
    }
};

bool is_loaded(ModelHost& h, const std::string& name) {
    for (const ModelStatus& m : h.list())
        if (m.entry.name == name) return m.engine != nullptr;
    return false;
}

TEST(ModelHost, LoadsOnDemandAndUnloadsAfterTheKeepAlive) {
    ModelsFolder f("keepalive");
    HostOptions h;
    h.keep_alive_seconds = 0.3;
    Host host(f, h);
    EXPECT_FALSE(is_loaded(*host.host, "qwen2"));
    {
        std::shared_ptr<Engine> e = host.host->acquire({"qwen2", std::nullopt});
        EXPECT_EQ(e->model_id, "qwen2");
        EXPECT_EQ(e->model.config().arch, "qwen2");
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        EXPECT_TRUE(is_loaded(*host.host, "qwen2"));  // in use: the keep-alive has not started
    }
    EXPECT_TRUE(wait_for([&] { return !is_loaded(*host.host, "qwen2"); }, std::chrono::milliseconds(3000)));
    EXPECT_EQ(host.host->loads(), 1u);
    EXPECT_EQ(host.host->unloads(), 1u);

    // A request's own keep_alive: forever (-1) outlives the default; 0 unloads at once.
    host.host->acquire({"stories260K", -1.0});
    host.host->acquire({"bert", 0.0});
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    EXPECT_TRUE(is_loaded(*host.host, "stories260K"));
    EXPECT_FALSE(is_loaded(*host.host, "bert"));
}

TEST(ModelHost, MaxModelsUnloadsTheLeastRecentlyUsedIdleModel) {
    ModelsFolder f("lru");
    HostOptions h;
    h.max_models = 2;
    Host host(f, h);
    host.host->acquire({"stories260K", std::nullopt});
    host.host->acquire({"qwen2", std::nullopt});
    host.host->acquire({"stories260K", std::nullopt});  // now qwen2 is the least recently used
    host.host->acquire({"bert", std::nullopt});
    EXPECT_TRUE(is_loaded(*host.host, "stories260K"));
    EXPECT_FALSE(is_loaded(*host.host, "qwen2"));
    EXPECT_TRUE(is_loaded(*host.host, "bert"));
    EXPECT_EQ(host.host->loaded_count(), 2u);
}

TEST(ModelHost, MaxRamCountsWeightsAndKvCache) {
    ModelsFolder f("ram");
    HostOptions h;
    h.max_models = 0;
    // synth-tiny-Q4_0 (13.7 MB) fits alone, not beside bert (4.9 MB) and its cache.
    h.max_ram_bytes = fs::file_size(shared_dir() + "/models/synth-tiny-Q4_0.gguf") + (1u << 20);
    Host host(f, h);
    host.host->acquire({"bert", std::nullopt});
    host.host->acquire({"synth-tiny-Q4_0", std::nullopt});
    EXPECT_FALSE(is_loaded(*host.host, "bert"));
    EXPECT_TRUE(is_loaded(*host.host, "synth-tiny-Q4_0"));
    h.max_ram_bytes = 1000;  // smaller than any model: a clear refusal, nothing unloaded
    Host tiny(f, h);
    try {
        tiny.host->acquire({"bert", std::nullopt});
        FAIL() << "loaded beyond --max-ram";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 503);
        EXPECT_NE(e.message().find("--max-ram"), std::string::npos) << e.message();
    }
}

TEST(ModelHost, ABusyModelIsNeverUnloadedAndAWaitingRequestGetsItsTurn) {
    ModelsFolder f("busy");
    HostOptions h;
    h.max_models = 1;
    h.load_timeout_seconds = 0.3;
    Host host(f, h);
    std::shared_ptr<Engine> busy = host.host->acquire({"stories260K", std::nullopt});
    try {
        host.host->acquire({"qwen2", std::nullopt});
        FAIL() << "a busy model was unloaded";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 503);
        EXPECT_NE(e.message().find("busy"), std::string::npos) << e.message();
    }
    EXPECT_TRUE(is_loaded(*host.host, "stories260K"));
    // Freed while a request waits: the waiting one loads its model.
    Host patient(f, [] { HostOptions p; p.max_models = 1; p.load_timeout_seconds = 10; return p; }());
    std::shared_ptr<Engine> held = patient.host->acquire({"stories260K", std::nullopt});
    std::thread release([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        held.reset();
    });
    std::shared_ptr<Engine> e = patient.host->acquire({"qwen2", std::nullopt});
    release.join();
    EXPECT_EQ(e->model_id, "qwen2");
    EXPECT_FALSE(is_loaded(*patient.host, "stories260K"));
}

TEST(ModelHost, RequestsForALoadingModelWaitAndShareOneLoad) {
    ModelsFolder f("shared-load");
    Host host(f, HostOptions{});
    std::vector<std::shared_ptr<Engine>> got(4);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = host.host->acquire({"synth-tiny-Q4_0", std::nullopt}); });
    for (auto& t : threads) t.join();
    for (const auto& e : got) EXPECT_EQ(e.get(), got[0].get());
    EXPECT_EQ(host.host->loads(), 1u);
}

TEST(ModelHost, UnknownNamesAndAFolderWithoutADefault) {
    ModelsFolder f("unknown", "");
    Host host(f, HostOptions{});
    try {
        host.host->acquire({"llama9", std::nullopt});
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 404);
        EXPECT_EQ(e.message(), "model \"llama9\" not found; this server has \"bert\", \"qwen2\", \"stories260K\", \"synth-tiny-Q4_0\"");
    }
    try {
        host.host->acquire({"", std::nullopt});
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 400);
        EXPECT_NE(e.message().find("names no model"), std::string::npos);
    }
    // A file added after start is found by name (pensieve pull into the folder).
    fs::create_symlink(shared_dir() + "/models/arch/qwen3.gguf", f.dir / "qwen3.gguf");
    EXPECT_EQ(host.host->acquire({"qwen3", std::nullopt})->model.config().arch, "qwen3");
}

TEST(ModelHost, AFileThatWillNotLoadGivesAClearErrorAndOthersStillLoad) {
    ModelsFolder f("broken");
    GgufWriter w;  // a valid GGUF header, but no weights
    w.set_string("general.architecture", "llama");
    w.write((f.dir / "empty-llama.gguf").string());
    Host host(f, HostOptions{});
    try {
        host.host->acquire({"empty-llama", std::nullopt});
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 500);
        EXPECT_NE(e.message().find("could not be loaded"), std::string::npos) << e.message();
    }
    EXPECT_EQ(host.host->acquire({"qwen2", std::nullopt})->model_id, "qwen2");
}

// Over HTTP: each request reaches the model it names, with the output that model gives
// when served alone; /v1/models and /metrics cover every model.
struct FolderServer {
    ModelsFolder folder;
    TestServer server;
    explicit FolderServer(const std::string& tag, HostOptions h = {})
        : folder(tag), server(ServerOptions{}, /*load=*/false) {
        h.threads = 1;
        server.http->serve_folder(ModelCatalog::folder(folder.dir.string()), h);
    }
};

json greedy_chat(const std::string& model) {
    json b = chat_body("Once upon a time", 12);
    b["model"] = model;
    return b;
}

TEST(ModelsDirServer, EachRequestGetsTheModelItNamesWithItsOwnOutput) {
    FolderServer fs_("http");
    const Reply a = post(fs_.server, "/v1/chat/completions", greedy_chat("gpt-4o"));
    const Reply b = post(fs_.server, "/v1/chat/completions", greedy_chat("qwen2"));
    ASSERT_EQ(a.status, 200) << a.raw;
    ASSERT_EQ(b.status, 200) << b.raw;
    EXPECT_EQ(a.body["model"], "stories260K");
    EXPECT_EQ(b.body["model"], "qwen2");
    // Alone: the single-model server over stories260K gives the same reply.
    const Reply alone = post(shared_server(), "/v1/chat/completions", greedy_chat("anything"));
    EXPECT_EQ(a.body["choices"][0]["message"]["content"], alone.body["choices"][0]["message"]["content"]);
    EXPECT_NE(a.body["choices"][0]["message"]["content"], b.body["choices"][0]["message"]["content"]);

    // Anthropic's route and embeddings pick their model the same way.
    const Reply m = post(fs_.server, "/v1/messages",
                         json{{"model", "qwen2"}, {"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}});
    EXPECT_EQ(m.status, 200) << m.raw;
    EXPECT_EQ(m.body["model"], "qwen2");
    const Reply e = post(fs_.server, "/v1/embeddings", json{{"model", "bert"}, {"input", "hello"}});
    EXPECT_EQ(e.status, 200) << e.raw;
    EXPECT_EQ(e.body["data"][0]["embedding"].size(), 64u);  // bert.gguf: dim 64

    expect_openai_error(post(fs_.server, "/v1/chat/completions", greedy_chat("nope")), 404, "\"qwen2\"");
    expect_openai_error(post(fs_.server, "/v1/chat/completions",
                             json{{"model", "qwen2"}, {"keep_alive", "later"}, {"messages", json::array()}}),
                        400, "keep_alive");

    const Reply list = get(fs_.server, "/v1/models");
    ASSERT_EQ(list.status, 200);
    std::map<std::string, json> by_id;
    for (const json& m : list.body["data"]) by_id[m["id"]] = m;
    ASSERT_EQ(by_id.size(), 4u);
    EXPECT_TRUE(by_id["qwen2"]["loaded"]);
    EXPECT_TRUE(by_id["bert"]["loaded"]);
    EXPECT_FALSE(by_id["synth-tiny-Q4_0"]["loaded"]);
    EXPECT_EQ(by_id["synth-tiny-Q4_0"]["quantization"], "Q4_0");
    EXPECT_EQ(by_id["stories260K"]["aliases"], json::array({"gpt-4o"}));
    EXPECT_GT(by_id["qwen2"]["expires_in"].get<double>(), 0);
    EXPECT_EQ(get(fs_.server, "/v1/models/gpt-4o").body["id"], "stories260K");
    expect_openai_error(get(fs_.server, "/v1/models/nope"), 404);
    EXPECT_EQ(get(fs_.server, "/health").status, 200);

    const std::string metrics = get(fs_.server, "/metrics").raw;
    EXPECT_NE(metrics.find("pensieve_models_loaded 3"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("pensieve_model_loads_total 3"), std::string::npos);
    EXPECT_NE(metrics.find("pensieve_requests_finished_total 3"), std::string::npos);  // the three generations
}

TEST(ModelsDirServer, CountersSurviveAnUnload) {
    HostOptions h;
    h.keep_alive_seconds = 0;
    FolderServer fs_("counters", h);
    ASSERT_EQ(post(fs_.server, "/v1/chat/completions", greedy_chat("qwen2")).status, 200);
    ASSERT_TRUE(wait_for([&] { return fs_.server.http->context().models.loaded_count() == 0; },
                         std::chrono::milliseconds(3000)));
    const std::string metrics = get(fs_.server, "/metrics").raw;
    EXPECT_NE(metrics.find("pensieve_requests_finished_total 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("pensieve_model_unloads_total 1"), std::string::npos);
    EXPECT_NE(metrics.find("pensieve_models_loaded 0"), std::string::npos);
}

}  // namespace
}  // namespace pensieve::server
