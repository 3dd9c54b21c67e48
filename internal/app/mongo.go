package app

import (
	"context"
	"errors"

	"crm/internal/config"
	"crm/internal/readmodel"
)

func openMongo(ctx context.Context, cfg config.Config) (readmodel.Store, error) {
	return nil, errors.New("MONGODB_URL: the MongoDB read model is not built yet")
}
