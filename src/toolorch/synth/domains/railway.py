"""Railway: stations, trains, trips and tickets; fares rules and services live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    code,
    day,
    money,
    person,
    pick,
)

TABLES = (
    Table("stations", (Col("name", "TEXT", lambda f, r: f"{f.city()} {r.choice(('Central', 'North', 'Junction'))}",
                           unique=True), Col("platforms", "INTEGER", between(2, 16)))),
    Table("trains", (Col("code", "TEXT", code("IC", 3), unique=True),
                     Col("type", "TEXT", pick("intercity", "regional", "express", "sleeper")),
                     Col("capacity", "INTEGER", pick(180, 240, 320, 450, 600)))),
    Table("trips", (Col("code", "TEXT", code("TR", 5), unique=True), Col("train_id", "INTEGER", ref="trains"),
                    Col("origin_id", "INTEGER", ref="stations"), Col("destination_id", "INTEGER", ref="stations"),
                    Col("date", "TEXT", day("2024-01-01", 365)), Col("distance_km", "INTEGER", between(20, 900)))),
    Table("tickets", (Col("trip_id", "INTEGER", ref="trips"), Col("holder", "TEXT", person),
                      Col("class", "TEXT", pick("second", "second", "first")), Col("price", "REAL", money(8, 260)))),
)

TRIP = Arg("trip", "trips.code")
TRAIN = Arg("train", "trains.code")
STATION = Arg("station", "stations.name")
DEPARTS = "FROM trips t JOIN stations s ON s.id = t.origin_id"

TOOLS = (
    DbTool("get_trip_train", "Code of the train that runs a trip.",
           "SELECT tr.code FROM trips t JOIN trains tr ON tr.id = t.train_id WHERE t.code = :trip", (TRIP,),
           "the code of the train running trip {trip}", returns="trains.code", entity="the train running trip {trip}"),
    DbTool("get_trip_origin", "Station a trip departs from.",
           f"SELECT s.name {DEPARTS} WHERE t.code = :trip", (TRIP,), "the departure station of trip {trip}",
           returns="stations.name"),
    DbTool("get_trip_distance", "Distance of a trip in km.", "SELECT distance_km FROM trips WHERE code = :trip",
           (TRIP,), "the distance in km of trip {trip}", answer_type="number"),
    DbTool("get_train_type", "Type of a train.", "SELECT type FROM trains WHERE code = :train", (TRAIN,),
           "the type of train {train}"),
    DbTool("get_train_capacity", "Seat capacity of a train.", "SELECT capacity FROM trains WHERE code = :train",
           (TRAIN,), "the seat capacity of {train}", answer_type="number"),
    DbTool("get_station_platforms", "Number of platforms at a station.",
           "SELECT platforms FROM stations WHERE name = :station", (STATION,), "the number of platforms at {station}",
           answer_type="number"),
    DbTool("list_train_trips", "Codes of all trips a train runs, comma-separated.",
           "SELECT group_concat(t.code, ', ') FROM trips t JOIN trains tr ON tr.id = t.train_id "
           "WHERE tr.code = :train HAVING count(*) > 0", (TRAIN,), "the trips run by {train}", role="list",
           answer_type="list"),
    DbTool("count_train_trips", "Number of trips a train runs.",
           "SELECT count(*) FROM trips t JOIN trains tr ON tr.id = t.train_id WHERE tr.code = :train", (TRAIN,),
           "the number of trips run by {train}", role="aggregate", answer_type="number"),
    DbTool("count_station_departures", "Number of trips departing from a station.",
           f"SELECT count(*) {DEPARTS} WHERE s.name = :station", (STATION,),
           "the number of trips departing from {station}", role="aggregate", answer_type="number"),
    DbTool("max_distance_from_station", "Longest trip, in km, departing from a station.",
           f"SELECT max(t.distance_km) {DEPARTS} WHERE s.name = :station", (STATION,),
           "the longest trip in km departing from {station}", role="aggregate", answer_type="number"),
    DbTool("sum_trip_revenue", "Total ticket revenue of a trip.",
           "SELECT round(sum(k.price), 2) FROM tickets k JOIN trips t ON t.id = k.trip_id WHERE t.code = :trip",
           (TRIP,), "the total ticket revenue of trip {trip}", role="aggregate", answer_type="number"),
    DbTool("avg_ticket_price_by_class", "Average ticket price in a class (2 decimals).",
           "SELECT round(avg(price), 2) FROM tickets WHERE class = :class", (Arg("class", "tickets.class"),),
           "the average {class} class ticket price", role="aggregate", answer_type="number"),
    DbTool("list_trip_tickets", "Tickets sold for a trip: holder, class and price.",
           "SELECT k.holder, k.class, k.price FROM tickets k JOIN trips t ON t.id = k.trip_id WHERE t.code = :trip "
           "ORDER BY k.id", (TRIP,), "the tickets sold for trip {trip}", role="rows", value_col="price"),
)

FACTS = (
    Fact("bike", "Bicycles", "A bicycle ticket on {org} costs ${v} for any distance.", ("5", "7", "9"),
         "How much is a bicycle ticket?", "number"),
    Fact("child", "Children", "Children under {v} travel free with an adult.", ("4", "6", "12"),
         "Under what age do children travel free?", "number"),
    Fact("senior", "Senior discount", "Travellers over 65 get {v}% off every fare.", ("25", "30", "50"),
         "What discount do travellers over 65 get, in percent?", "number"),
    Fact("delay", "Delay compensation", "Delays of more than {v} minutes earn a 25% refund.", ("30", "45", "60"),
         "How many minutes of delay earn a partial refund?", "number"),
    Fact("luggage", "Luggage", "Each passenger may bring {v} large suitcases.", ("2", "3"),
         "How many large suitcases may each passenger bring?", "number"),
    Fact("wifi", "On-board Wi-Fi", "The on-board Wi-Fi network is called {v}.", ("RailNet", "OnTrack", "TrainSpot"),
         "What is the on-board Wi-Fi network called?"),
    Fact("quiet", "Quiet coach", "The quiet coach is always coach {v}.", ("1", "3", "7"),
         "Which coach is the quiet coach?", "number"),
    Fact("pass", "Monthly pass", "A monthly commuter pass costs ${v}.", ("89", "119", "149"),
         "How much is a monthly commuter pass?", "number"),
    Fact("booking", "Advance booking", "Tickets go on sale {v} days before departure.", ("60", "90", "120"),
         "How many days before departure do tickets go on sale?", "number"),
    Fact("pets", "Pets", "Dogs travel for {v}% of the second class fare.", ("10", "25", "50"),
         "What share of the second class fare do dogs pay, in percent?", "number"),
)

DOMAIN = Domain("railway", "Stations, trains, trips and tickets of {org}.",
                lambda f, r: f"{f.state()} Rail", TABLES, TOOLS, FACTS)
