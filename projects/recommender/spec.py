"""recommender: scored on MovieLens users' later likes (per-user time split); the logged model serves titles."""

from common.spec import ProjectSpec, SplitSpec

SPEC = ProjectSpec(
    name="recommender",
    title="TMDB 5000 movie recommender (content + hybrid), scored by NDCG@10 on MovieLens users' later likes",
    task="recommendation",
    primary_metric="ndcg_at_10",
    greater_is_better=True,
    # Per user: liked (>= 4 stars) catalogue films in time order, first 80% history, last 20% test; users
    # with >= 10 likes. The logged model is refit on the whole catalogue and every rating.
    split=SplitSpec(kind="per_user_time", test_size=0.2, cv_folds=0, cv_on="none", refit_on="all", seed=42),
    # Content first, then hybrid: the hybrid (the default) becomes champion when it scores higher.
    variants=({"mode": "content"}, {"mode": "hybrid"}),
    seed_scores={"ndcg_at_10": 0.023},
    input_kind="titles",
    target="title",
)
