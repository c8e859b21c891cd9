// Embedding and rerank requests of many clients share forward passes. A request's inputs
// join a queue; a request that finds no pass running leads: it takes everything queued, runs
// it in shared passes (engine/embed.h: up to kEncoderPassTokens tokens each, every
// vector bit for bit what its input gets alone) and hands each request its vectors,
// while requests that arrive meanwhile wait for the next round. No thread of its own:
// the requests' own threads do the work, one at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "engine/rerank.h"
#include "model/model.h"

namespace pensieve {

class ThreadPool;

class EncoderQueue {
public:
    EncoderQueue(Model& model, ThreadPool& pool) : model_(model), pool_(pool) {}

    // embed_inputs(model, pool, inputs, pooling), in passes shared with other callers'.
    // Throws Error for a bad input before queueing (the index named when several).
    std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& inputs, Pooling pooling);
    // rerank_scores(model, pool, pairs), in passes shared with other callers' pairs.
    std::vector<float> rerank(const std::vector<RerankPair>& pairs);

    struct Stats {
        uint64_t requests = 0;  // embed() calls that were queued
        uint64_t rounds = 0;    // times a leader took the queue (each round: one or more passes)
    };
    Stats stats() const;
    size_t waiting() const;  // requests queued and not yet taken by a leader

private:
    struct Job;
    void run(Job& job);  // queues the job and returns when a round has done it
    void run_round(const std::vector<Job*>& jobs);

    Model& model_;
    ThreadPool& pool_;
    mutable std::mutex mutex_;
    std::condition_variable round_done_;
    std::vector<Job*> queue_;
    bool leading_ = false;
    Stats stats_;
};

}  // namespace pensieve
