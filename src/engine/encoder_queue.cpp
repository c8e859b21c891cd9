#include "engine/encoder_queue.h"

#include <exception>

#include "engine/embed.h"

namespace pensieve {

// One request: inputs to embed, or pairs to score.
struct EncoderQueue::Job {
    const std::vector<std::vector<int32_t>>* inputs = nullptr;
    Pooling pooling = Pooling::None;
    const std::vector<RerankPair>* pairs = nullptr;
    std::vector<std::vector<float>> vectors;
    std::vector<float> scores;
    std::exception_ptr error;
    bool done = false;
};

std::vector<std::vector<float>> EncoderQueue::embed(const std::vector<std::vector<int32_t>>& inputs,
                                                    Pooling pooling) {
    check_embedding_inputs(model_, inputs);
    Job job;
    job.inputs = &inputs;
    job.pooling = pooling;
    run(job);
    return std::move(job.vectors);
}

std::vector<float> EncoderQueue::rerank(const std::vector<RerankPair>& pairs) {
    check_rerank_pairs(model_, pairs);
    Job job;
    job.pairs = &pairs;
    run(job);
    return std::move(job.scores);
}

void EncoderQueue::run(Job& job) {
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.push_back(&job);
    ++stats_.requests;
    while (!job.done) {
        if (leading_) {
            round_done_.wait(lock);
            continue;
        }
        // Lead a round: everything queued now, this request among it.
        leading_ = true;
        ++stats_.rounds;
        const std::vector<Job*> round = std::move(queue_);
        queue_.clear();
        lock.unlock();
        run_round(round);
        lock.lock();
        for (Job* j : round) j->done = true;
        leading_ = false;
        round_done_.notify_all();  // results, and the next round's leader
    }
    if (job.error) std::rethrow_exception(job.error);
}

// The round's embedding inputs in shared passes, then its rerank pairs in shared passes.
// A failure fails the requests of that kind in the round.
void EncoderQueue::run_round(const std::vector<Job*>& jobs) {
    std::vector<std::vector<int32_t>> inputs;
    std::vector<Pooling> poolings;
    std::vector<RerankPair> pairs;
    for (const Job* j : jobs) {
        if (j->inputs)
            for (const std::vector<int32_t>& in : *j->inputs) {
                inputs.push_back(in);
                poolings.push_back(j->pooling);
            }
        if (j->pairs) pairs.insert(pairs.end(), j->pairs->begin(), j->pairs->end());
    }
    try {
        std::vector<std::vector<float>> vectors;
        if (!inputs.empty()) vectors = embed_inputs(model_, pool_, inputs, poolings);
        size_t next = 0;
        for (Job* j : jobs)
            for (size_t i = 0; j->inputs && i < j->inputs->size(); ++i) j->vectors.push_back(std::move(vectors[next++]));
    } catch (...) {
        for (Job* j : jobs)
            if (j->inputs) j->error = std::current_exception();
    }
    try {
        std::vector<float> scores;
        if (!pairs.empty()) scores = rerank_scores(model_, pool_, pairs);
        size_t next = 0;
        for (Job* j : jobs)
            if (j->pairs) {
                j->scores.assign(scores.begin() + long(next), scores.begin() + long(next + j->pairs->size()));
                next += j->pairs->size();
            }
    } catch (...) {
        for (Job* j : jobs)
            if (j->pairs) j->error = std::current_exception();
    }
}

EncoderQueue::Stats EncoderQueue::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

size_t EncoderQueue::waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

}  // namespace pensieve
