#include "engine/encoder_queue.h"

#include <exception>

#include "engine/embed.h"

namespace pensieve {

struct EncoderQueue::Job {
    const std::vector<std::vector<int32_t>>* inputs;
    Pooling pooling;
    std::vector<std::vector<float>> vectors;
    std::exception_ptr error;
    bool done = false;
};

std::vector<std::vector<float>> EncoderQueue::embed(const std::vector<std::vector<int32_t>>& inputs,
                                                    Pooling pooling) {
    check_embedding_inputs(model_, inputs);
    Job job{&inputs, pooling, {}, nullptr, false};
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
    return std::move(job.vectors);
}

void EncoderQueue::run_round(const std::vector<Job*>& jobs) {
    std::vector<std::vector<int32_t>> inputs;
    std::vector<Pooling> poolings;
    for (const Job* j : jobs)
        for (const std::vector<int32_t>& in : *j->inputs) {
            inputs.push_back(in);
            poolings.push_back(j->pooling);
        }
    try {
        std::vector<std::vector<float>> vectors = embed_inputs(model_, pool_, inputs, poolings);
        size_t next = 0;
        for (Job* j : jobs)
            for (size_t i = 0; i < j->inputs->size(); ++i) j->vectors.push_back(std::move(vectors[next++]));
    } catch (...) {
        for (Job* j : jobs) j->error = std::current_exception();
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
