"""A built-in catalog of synthetic but realistic tools, one per domain.

Each entry: a name, a 2-4 sentence description, 2-4 parameters with
descriptions, and request templates whose slots fill some parameters. The
domains are chosen far apart so that every request needs exactly one tool.
Slot values come from the lists below; the request states them, so the
arguments of a call can be checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .words import CITIES, COUNTRIES, CURRENCIES, LANGUAGES


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # JSON schema type
    description: str
    slot: str | None = None  # the request slot that states its value; None = not stated
    required: bool | None = None  # default: required iff the request states it

    @property
    def is_required(self) -> bool:
        return self.slot is not None if self.required is None else self.required


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    requests: tuple[str, ...]  # str.format templates over the slots

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI function format, as `bind_tools` accepts it."""
        props = {p.name: {"type": p.type, "description": p.description} for p in self.params}
        required = [p.name for p in self.params if p.is_required]
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": props, "required": required},
            },
        }


SLOTS: dict[str, list[Any]] = {
    "city": CITIES,
    "city2": CITIES,
    "country": COUNTRIES,
    "language": LANGUAGES,
    "currency": CURRENCIES,
    "currency2": CURRENCIES,
    "days": [2, 3, 4, 5, 6, 7],
    "amount": [25, 80, 150, 240, 500, 1200],
    "minutes": [15, 20, 30, 45],
    "people": [2, 3, 4, 5, 6, 8],
    "date": ["2025-03-14", "2025-05-02", "2025-06-21", "2025-08-09", "2025-10-30", "2025-12-05"],
    "time": ["12:30", "18:00", "19:30", "20:15"],
    "ticker": ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "INTC"],
    "coin": ["bitcoin", "ethereum", "solana", "cardano", "dogecoin"],
    "phrase": ["good morning", "where is the station", "thank you very much", "see you tomorrow"],
    "ingredient": ["chickpeas", "salmon", "mushrooms", "spinach", "lentils", "eggplant"],
    "tracking": ["1Z999AA10123456784", "9400110200881234567890", "JD014600006281234567"],
    "movie": ["The Silent Harbor", "Paper Moons", "Northern Lights", "The Last Orchard"],
    "team": ["Boston Celtics", "Manchester United", "Chicago Cubs", "Toronto Maple Leafs"],
    "topic": ["solar energy", "electric cars", "space exploration", "vaccines", "farming"],
    "word": ["ephemeral", "ubiquitous", "serendipity", "laconic", "petrichor", "quixotic"],
    "years": [15, 20, 25, 30],
    "rate": [3.5, 4.25, 5.0, 6.1],
    "weight": [58, 65, 72, 80, 94],
    "height": [158, 165, 172, 180, 191],
    "percent": [10, 15, 18, 20],
    "song": ["Yesterday", "Hallelujah", "Bohemian Rhapsody", "Imagine"],
    "book": ["Moby Dick", "Pride and Prejudice", "Dune", "The Hobbit", "Middlemarch"],
    "job": ["nurse", "data analyst", "electrician", "teacher", "software engineer"],
    "price": [300000, 450000, 600000, 800000],
    "bedrooms": [2, 3, 4],
    "specialty": ["dermatologist", "cardiologist", "dentist", "pediatrician"],
    "drug": ["ibuprofen", "aspirin", "warfarin", "metformin"],
    "drug2": ["paracetamol", "omeprazole", "lisinopril", "sertraline"],
    "species": ["cat", "dog", "rabbit", "parrot"],
    "plant": ["monstera", "fiddle leaf fig", "snake plant", "orchid", "basil"],
    "url": ["https://example.com/blog/2025/long-article-title", "https://shop.example.org/items?id=88231"],
    "length": [12, 16, 20, 24, 32],
    "ip": ["8.8.8.8", "1.1.1.1", "203.0.113.7", "198.51.100.23"],
    "event": ["dentist visit", "team offsite", "birthday dinner", "quarterly review"],
    "email": ["ana@example.com", "li.wei@example.org", "sam.okafor@example.net"],
    "subject": ["the budget draft", "next week's trip", "the signed contract"],
    "reminder": ["call the plumber", "take the bread out", "water the plants", "join the standup"],
    "food": ["oatmeal", "avocado", "brown rice", "almonds", "greek yogurt"],
    "grams": [50, 100, 150, 200],
    "year": [2025, 2026],
    "a": [17, 23, 48, 125],
    "b": [6, 9, 14, 32],
    "sign": ["Aries", "Leo", "Virgo", "Scorpio", "Pisces"],
    "kg": [2, 5, 12, 20],
    "activity": ["swimming", "cycling", "rowing", "jogging"],
    "podcast": ["The Daily Orbit", "Deep Roots", "Signal and Noise", "Kitchen Science"],
    "flight": ["LH1234", "BA287", "AF66", "UA901", "KL1771"],
    "magnitude": [4.0, 4.5, 5.0, 6.0],
    "region": ["Chile", "Japan", "Alaska", "Indonesia", "Turkey"],
    "repo": ["pandas-dev/pandas", "numpy/numpy", "pytorch/pytorch", "langchain-ai/langchain"],
    "label": ["bug", "documentation", "good first issue", "performance"],
    "dish": ["roast lamb", "mushroom risotto", "grilled salmon", "beef stew"],
    "park": ["Yosemite", "Banff", "Zion", "Torres del Paine"],
    "km": [5, 8, 12, 20],
    "address": ["221 Baker Street", "10 Market Square", "45 Harbour Road"],
    "unit_from": ["miles", "pounds", "gallons", "feet"],
    "unit_to": ["kilometers", "kilograms", "liters", "meters"],
    "n": [3, 12, 40, 250],
    "restaurant": ["Casa Lucia", "The Copper Pot", "Sakura Garden", "Le Petit Four"],
}

P = Param

CATALOG: tuple[ToolSpec, ...] = (
    ToolSpec("get_weather_forecast",
             "Get the daily weather forecast for a city. Returns the high and low temperature, "
             "the chance of rain and the wind speed for each day. Use it for questions about "
             "upcoming weather.",
             (P("city", "string", "The city, e.g. Lisbon.", "city"),
              P("days", "integer", "How many days ahead to forecast, from 1 to 10.", "days"),
              P("units", "string", "'metric' or 'imperial'. Defaults to metric.")),
             ("What will the weather be like in {city} over the next {days} days?",
              "Give me the {days}-day weather forecast for {city}.")),
    ToolSpec("convert_currency",
             "Convert an amount of money from one currency to another at today's exchange rate. "
             "Currencies are given as three-letter ISO codes.",
             (P("amount", "number", "The amount of money to convert.", "amount"),
              P("from_currency", "string", "ISO code of the source currency, e.g. EUR.", "currency"),
              P("to_currency", "string", "ISO code of the target currency, e.g. USD.", "currency2")),
             ("How much is {amount} {currency} in {currency2}?",
              "Convert {amount} {currency} to {currency2} for me.")),
    ToolSpec("search_flights",
             "Search for commercial flights between two cities on a given date. Returns "
             "airlines, departure times, stops and prices. Does not book anything.",
             (P("origin", "string", "Departure city.", "city"),
              P("destination", "string", "Arrival city.", "city2"),
              P("date", "string", "Departure date as YYYY-MM-DD.", "date"),
              P("cabin", "string", "Cabin class: economy, premium or business.")),
             ("Find me flights from {city} to {city2} on {date}.",
              "Are there any flights from {city} to {city2} on {date}?")),
    ToolSpec("book_hotel_room",
             "Book a hotel room in a city. Picks the best-rated available hotel within the "
             "budget and returns a booking confirmation. Requires a check-in date and the "
             "number of nights.",
             (P("city", "string", "City where the hotel should be.", "city"),
              P("check_in", "string", "Check-in date as YYYY-MM-DD.", "date"),
              P("nights", "integer", "Number of nights to stay.", "days"),
              P("max_price", "number", "Highest price per night in USD.")),
             ("Book me a hotel room in {city} for {days} nights from {date}.",
              "I need a hotel in {city}, checking in on {date}, for {days} nights.")),
    ToolSpec("get_stock_quote",
             "Get the latest share price of a company listed on a stock exchange. Returns the "
             "price, the day's change in percent and the trading volume.",
             (P("ticker", "string", "The stock ticker symbol, e.g. AAPL.", "ticker"),
              P("exchange", "string", "Exchange code, e.g. NASDAQ. Optional.")),
             ("What is the current share price of {ticker}?",
              "How is {ticker} stock trading right now?")),
    ToolSpec("translate_text",
             "Translate a piece of text into another language. Detects the source language "
             "automatically. Returns the translation only.",
             (P("text", "string", "The text to translate.", "phrase"),
              P("target_language", "string", "The language to translate into, e.g. French.", "language")),
             ("Translate '{phrase}' into {language}.",
              "How do you say '{phrase}' in {language}?")),
    ToolSpec("find_recipes",
             "Search a cooking database for recipes that use a given ingredient. Returns recipe "
             "names, cooking times and ingredient lists. Can filter by total preparation time.",
             (P("ingredient", "string", "The main ingredient, e.g. chickpeas.", "ingredient"),
              P("max_minutes", "integer", "Longest total preparation time in minutes.", "minutes"),
              P("diet", "string", "Optional diet filter such as vegan or gluten-free.")),
             ("Give me recipes with {ingredient} that take less than {minutes} minutes.",
              "What can I cook with {ingredient} in under {minutes} minutes?")),
    ToolSpec("track_package",
             "Track a parcel shipment by its tracking number. Returns the current location, "
             "the delivery status and the expected delivery date.",
             (P("tracking_number", "string", "The carrier's tracking number.", "tracking"),
              P("carrier", "string", "Carrier name such as UPS or DHL. Optional.")),
             ("Where is my package with tracking number {tracking}?",
              "Track the parcel {tracking} for me.")),
    ToolSpec("get_driving_directions",
             "Get turn-by-turn driving directions between two places. Returns the route, the "
             "distance and the expected travel time with current traffic. Use it for trips by car.",
             (P("origin", "string", "Where the trip starts.", "city"),
              P("destination", "string", "Where the trip ends.", "city2"),
              P("avoid_tolls", "boolean", "Whether to avoid toll roads.")),
             ("How do I drive from {city} to {city2}?",
              "Give me driving directions from {city} to {city2}.")),
    ToolSpec("get_local_time",
             "Get the current local time and time zone of a city. Accounts for daylight saving time.",
             (P("city", "string", "The city, e.g. Osaka.", "city"),
              P("format", "string", "'12h' or '24h' clock. Defaults to 24h.")),
             ("What time is it right now in {city}?",
              "Tell me the current local time in {city}.")),
    ToolSpec("convert_units",
             "Convert a measurement from one unit to another. Supports length, mass, volume and "
             "temperature units. Returns the converted value.",
             (P("value", "number", "The number to convert.", "n"),
              P("from_unit", "string", "The unit of the value, e.g. miles.", "unit_from"),
              P("to_unit", "string", "The unit to convert to, e.g. kilometers.", "unit_to")),
             ("Convert {n} {unit_from} to {unit_to}.",
              "How many {unit_to} are {n} {unit_from}?")),
    ToolSpec("reserve_restaurant_table",
             "Reserve a table at a restaurant. Checks availability for the party size and time "
             "and returns a reservation code. Fails if the restaurant is fully booked.",
             (P("restaurant", "string", "The restaurant's name.", "restaurant"),
              P("party_size", "integer", "How many people are coming.", "people"),
              P("time", "string", "Time of the reservation as HH:MM.", "time"),
              P("date", "string", "Date as YYYY-MM-DD. Defaults to today.")),
             ("Reserve a table for {people} at {restaurant} at {time}.",
              "Can you book {restaurant} for {people} people at {time}?")),
    ToolSpec("get_movie_showtimes",
             "List cinema showtimes for a film in a city. Returns cinemas, start times and ticket "
             "prices for the next three days.",
             (P("movie_title", "string", "The title of the film.", "movie"),
              P("city", "string", "The city to search in.", "city")),
             ("When is '{movie}' playing in {city}?",
              "Find showtimes for '{movie}' in {city}.")),
    ToolSpec("get_sports_scores",
             "Get the result of a sports team's most recent game and its next scheduled game. "
             "Covers football, basketball, baseball and hockey leagues.",
             (P("team", "string", "The full team name.", "team"),
              P("league", "string", "The league, e.g. NBA. Optional.")),
             ("What was the score of the last {team} game?",
              "How did the {team} do in their latest match?")),
    ToolSpec("search_news",
             "Search recent news articles on a topic. Returns headlines, sources and publication "
             "dates, newest first. Use it for current events.",
             (P("topic", "string", "What the news should be about.", "topic"),
              P("days_back", "integer", "How many days back to search.", "days"),
              P("language", "string", "Language of the articles. Defaults to English.")),
             ("Show me news about {topic} from the past {days} days.",
              "What has been in the news about {topic} in the last {days} days?")),
    ToolSpec("define_word",
             "Look up the meaning of an English word in a dictionary. Returns definitions, the "
             "part of speech, the pronunciation and example sentences.",
             (P("word", "string", "The word to look up.", "word"),
              P("include_etymology", "boolean", "Whether to add the word's origin.")),
             ("What does the word '{word}' mean?",
              "Define '{word}' for me.")),
    ToolSpec("calculate_mortgage_payment",
             "Calculate the monthly payment of a fixed-rate mortgage. Uses the loan amount, the "
             "annual interest rate and the term in years. Also returns the total interest paid.",
             (P("loan_amount", "number", "The amount borrowed in dollars.", "price"),
              P("annual_rate", "number", "Annual interest rate in percent, e.g. 4.5.", "rate"),
              P("years", "integer", "Length of the loan in years.", "years")),
             ("What is the monthly payment on a {price} dollar mortgage over {years} years at {rate} percent?",
              "Calculate my mortgage payment: {price} dollars, {rate} percent interest, {years} years.")),
    ToolSpec("calculate_bmi",
             "Compute the body mass index from weight and height. Returns the index and the "
             "weight category it falls into.",
             (P("weight_kg", "number", "Body weight in kilograms.", "weight"),
              P("height_cm", "number", "Height in centimeters.", "height")),
             ("I weigh {weight} kg and I am {height} cm tall. What is my body mass index?",
              "Compute the BMI for someone who is {height} cm tall and weighs {weight} kg.")),
    ToolSpec("calculate_tip",
             "Work out the tip and the total for a restaurant bill. Can split the total between "
             "several people.",
             (P("bill_amount", "number", "The bill before the tip.", "amount"),
              P("tip_percent", "number", "Tip in percent of the bill.", "percent"),
              P("split_between", "integer", "Number of people sharing the bill. Defaults to 1.")),
             ("How much should I tip on a {amount} dollar bill at {percent} percent?",
              "What's a {percent} percent tip on a bill of {amount} dollars?")),
    ToolSpec("get_song_lyrics",
             "Fetch the lyrics of a song. Returns the full text with verses and chorus marked. "
             "Lyrics are licensed and may be shortened.",
             (P("song_title", "string", "The title of the song.", "song"),
              P("artist", "string", "The performer, to tell apart songs with the same title.")),
             ("Show me the lyrics of '{song}'.",
              "What are the words to the song '{song}'?")),
    ToolSpec("get_crypto_price",
             "Get the current market price of a cryptocurrency in US dollars. Also returns the "
             "24-hour change and the market capitalisation.",
             (P("coin", "string", "The coin's name, e.g. bitcoin.", "coin"),)
             + (P("vs_currency", "string", "Quote currency. Defaults to USD."),),
             ("What is the price of {coin} right now?",
              "How much is one {coin} worth today?")),
    ToolSpec("get_air_quality",
             "Get the air quality index of a city. Returns the index, the main pollutant and a "
             "health recommendation. Updated every hour.",
             (P("city", "string", "The city to check.", "city"),
              P("pollutant", "string", "Optional pollutant to focus on, e.g. PM2.5.")),
             ("How clean is the air in {city} today? Give me the air quality index.",
              "Check the air pollution level in {city}.")),
    ToolSpec("find_library_book",
             "Check whether a book is available in the public library network. Returns the "
             "branches that hold it and whether a copy can be borrowed now.",
             (P("title", "string", "The book's title.", "book"),
              P("author", "string", "The author's name. Optional.")),
             ("Is the book '{book}' available at the library?",
              "Can I borrow '{book}' from the public library?")),
    ToolSpec("search_jobs",
             "Search job listings by job title and location. Returns employers, salaries and "
             "posting dates. Use it to help someone find work.",
             (P("job_title", "string", "The kind of job, e.g. nurse.", "job"),
              P("city", "string", "Where the job should be.", "city"),
              P("remote", "boolean", "Whether to include remote positions.")),
             ("Find {job} jobs in {city}.",
              "Are there any open {job} positions in {city}?")),
    ToolSpec("search_homes_for_sale",
             "Search real-estate listings of homes for sale. Filters by city, highest price and "
             "number of bedrooms. Returns addresses, prices and photos.",
             (P("city", "string", "The city to search in.", "city"),
              P("max_price", "number", "Highest asking price in dollars.", "price"),
              P("bedrooms", "integer", "Minimum number of bedrooms.", "bedrooms")),
             ("Show me homes for sale in {city} under {price} dollars with at least {bedrooms} bedrooms.",
              "I want to buy a house in {city}: {bedrooms} bedrooms or more, at most {price} dollars.")),
    ToolSpec("rent_car",
             "Rent a car for pick-up in a city. Compares rental companies and reserves the "
             "cheapest car of the chosen size.",
             (P("pickup_city", "string", "City where the car is picked up.", "city"),
              P("days", "integer", "Rental length in days.", "days"),
              P("car_size", "string", "small, medium, large or van.")),
             ("I need a rental car in {city} for {days} days.",
              "Rent me a car to pick up in {city}, for {days} days.")),
    ToolSpec("get_train_schedule",
             "Get the timetable of train connections between two cities. Returns departure and "
             "arrival times, changes and platforms.",
             (P("from_city", "string", "Departure city.", "city"),
              P("to_city", "string", "Arrival city.", "city2"),
              P("date", "string", "Travel date as YYYY-MM-DD. Defaults to today.")),
             ("When do trains leave from {city} to {city2}?",
              "Show me the train timetable from {city} to {city2}.")),
    ToolSpec("find_ev_charging_stations",
             "Find charging stations for electric vehicles in a city. Returns addresses, plug "
             "types, charging speed and current availability.",
             (P("city", "string", "The city to search in.", "city"),
              P("min_power_kw", "number", "Lowest charging power in kW.")),
             ("Where can I charge my electric car in {city}?",
              "Find EV charging stations in {city}.")),
    ToolSpec("book_doctor_appointment",
             "Book an appointment with a medical specialist. Finds the first free slot on the "
             "given date and confirms it. Requires the kind of specialist.",
             (P("specialty", "string", "The kind of doctor, e.g. dermatologist.", "specialty"),
              P("date", "string", "Preferred date as YYYY-MM-DD.", "date"),
              P("insurance", "string", "Insurance provider. Optional.")),
             ("Book me an appointment with a {specialty} on {date}.",
              "I need to see a {specialty} on {date}, please make an appointment.")),
    ToolSpec("check_drug_interactions",
             "Check whether two medications interact. Returns the severity of any interaction "
             "and advice from a pharmacology database. Not a substitute for a doctor.",
             (P("drug_a", "string", "The first medication.", "drug"),
              P("drug_b", "string", "The second medication.", "drug2")),
             ("Is it safe to take {drug} together with {drug2}?",
              "Do {drug} and {drug2} interact?")),
    ToolSpec("find_pets_for_adoption",
             "Search animal shelters for pets available for adoption. Filters by species and "
             "city and returns the animals' names, ages and shelters.",
             (P("species", "string", "The kind of animal, e.g. cat.", "species"),
              P("city", "string", "Where to search.", "city"),
              P("max_age_years", "integer", "Oldest age in years. Optional.")),
             ("I want to adopt a {species} in {city}. Which ones are available?",
              "Find a {species} I can adopt from a shelter in {city}.")),
    ToolSpec("get_plant_care_guide",
             "Get care instructions for a house or garden plant. Returns watering frequency, "
             "light needs, soil type and common problems.",
             (P("plant_name", "string", "The plant's common name.", "plant"),)
             + (P("climate", "string", "Indoor or outdoor. Optional."),),
             ("How do I take care of a {plant}?",
              "How often should I water my {plant}, and how much light does it need?")),
    ToolSpec("shorten_url",
             "Create a short link that redirects to a long web address. Returns the short URL "
             "and a QR code. Links never expire.",
             (P("url", "string", "The long URL to shorten.", "url"),
              P("custom_alias", "string", "Optional custom ending for the short link.")),
             ("Shorten this link: {url}",
              "Make a short URL for {url}.")),
    ToolSpec("generate_password",
             "Generate a strong random password. The length is adjustable and symbols can be "
             "included or left out. The password is never stored.",
             (P("length", "integer", "Number of characters.", "length"),
              P("include_symbols", "boolean", "Whether to use symbols such as # and %.")),
             ("Generate a random password with {length} characters.",
              "Create a secure {length}-character password for me.")),
    ToolSpec("lookup_ip_address",
             "Look up information about an IP address. Returns the country, the city, the "
             "internet provider and whether it belongs to a known VPN.",
             (P("ip_address", "string", "An IPv4 or IPv6 address.", "ip"),)
             + (P("include_asn", "boolean", "Whether to add the autonomous system number."),),
             ("Where is the IP address {ip} located?",
              "Who owns the IP address {ip}?")),
    ToolSpec("create_calendar_event",
             "Add an event to the user's calendar. Needs a title, a date and a start time. "
             "Sends invitations if attendees are given.",
             (P("title", "string", "Name of the event.", "event"),
              P("date", "string", "Date as YYYY-MM-DD.", "date"),
              P("start_time", "string", "Start time as HH:MM.", "time"),
              P("attendees", "string", "Comma-separated e-mail addresses. Optional.")),
             ("Put '{event}' in my calendar on {date} at {time}.",
              "Add a calendar event '{event}' for {date}, starting {time}.")),
    ToolSpec("send_email",
             "Send an e-mail from the user's account. Needs the recipient's address and a "
             "subject; the body is optional. Returns the message id.",
             (P("recipient", "string", "The recipient's e-mail address.", "email"),
              P("subject", "string", "The subject line.", "subject"),
              P("body", "string", "The text of the e-mail.")),
             ("Send an e-mail to {email} about {subject}.",
              "E-mail {email} with the subject '{subject}'.")),
    ToolSpec("set_reminder",
             "Set a reminder that notifies the user after a delay. The reminder repeats its "
             "message once and then expires.",
             (P("message", "string", "What to remind the user of.", "reminder"),
              P("minutes_from_now", "integer", "Delay in minutes.", "minutes")),
             ("Remind me to {reminder} in {minutes} minutes.",
              "In {minutes} minutes, remind me to {reminder}.")),
    ToolSpec("get_nutrition_facts",
             "Get the nutrition facts of a food. Returns calories, protein, fat, carbohydrates and "
             "fibre for the given portion.",
             (P("food", "string", "The food, e.g. oatmeal.", "food"),
              P("grams", "number", "Portion size in grams.", "grams")),
             ("How many calories and how much protein are in {grams} grams of {food}?",
              "Give me the nutrition facts for {grams} g of {food}.")),
    ToolSpec("find_parking",
             "Find parking garages and street parking near an address. Returns walking distance, "
             "hourly rates and free spaces.",
             (P("address", "string", "The street address to park near.", "address"),
              P("city", "string", "The city of the address.", "city"),
              P("max_hourly_rate", "number", "Highest hourly price. Optional.")),
             ("Where can I park near {address} in {city}?",
              "Find a parking garage close to {address}, {city}.")),
    ToolSpec("get_public_holidays",
             "List the public holidays of a country in a given year. Returns dates and holiday "
             "names, including regional ones.",
             (P("country", "string", "The country.", "country"),
              P("year", "integer", "The calendar year.", "year")),
             ("Which public holidays does {country} have in {year}?",
              "List the {year} bank holidays in {country}.")),
    ToolSpec("evaluate_math_expression",
             "Evaluate an arithmetic expression exactly. Supports + - * / and parentheses. Use it "
             "for calculations that must be correct to the last digit.",
             (P("expression", "string", "The expression, e.g. (17 * 6) + 3.", required=True),
              P("precision", "integer", "Decimal places in the result. Defaults to 10.")),
             ("What is {a} multiplied by {b}? Calculate it exactly.",
              "Compute {a} times {b} for me.")),
    ToolSpec("get_horoscope",
             "Get today's horoscope for a zodiac sign. Returns a short reading on love, work and "
             "health. For entertainment only.",
             (P("sign", "string", "The zodiac sign, e.g. Leo.", "sign"),
              P("day", "string", "today, tomorrow or yesterday.")),
             ("What is my horoscope for today? I am a {sign}.",
              "Read me today's horoscope for {sign}.")),
    ToolSpec("estimate_shipping_cost",
             "Estimate the cost of shipping a parcel abroad. Compares postal services and couriers "
             "by price and delivery time.",
             (P("weight_kg", "number", "Parcel weight in kilograms.", "kg"),
              P("destination_country", "string", "Where the parcel goes.", "country"),
              P("express", "boolean", "Whether to include express options.")),
             ("How much does it cost to ship a {kg} kg parcel to {country}?",
              "Estimate postage for a {kg} kilogram package going to {country}.")),
    ToolSpec("estimate_calories_burned",
             "Estimate how many calories an exercise session burns. Uses the activity, its "
             "duration and the person's weight.",
             (P("activity", "string", "The exercise, e.g. cycling.", "activity"),
              P("minutes", "integer", "How long the session lasts.", "minutes"),
              P("weight_kg", "number", "Body weight in kilograms. Optional.")),
             ("How many calories do I burn with {minutes} minutes of {activity}?",
              "Estimate the calories burned by {activity} for {minutes} minutes.")),
    ToolSpec("get_podcast_episodes",
             "List the latest episodes of a podcast. Returns titles, release dates, durations and "
             "short summaries.",
             (P("podcast_name", "string", "The podcast's name.", "podcast"),
              P("limit", "integer", "How many episodes to return. Defaults to 5.")),
             ("What are the newest episodes of the podcast '{podcast}'?",
              "List recent episodes of '{podcast}'.")),
    ToolSpec("check_flight_status",
             "Check the live status of a flight by its flight number. Returns whether it is on "
             "time, delayed or cancelled, with gate and terminal.",
             (P("flight_number", "string", "Airline code and number, e.g. LH1234.", "flight"),
              P("date", "string", "Date of the flight as YYYY-MM-DD. Defaults to today.")),
             ("Is flight {flight} on time?",
              "What is the status of flight {flight} today?")),
    ToolSpec("get_earthquake_reports",
             "List recent earthquakes in a region above a given magnitude. Returns time, "
             "magnitude, depth and epicentre of each quake from seismic agencies.",
             (P("region", "string", "Country or region name.", "region"),
              P("min_magnitude", "number", "Smallest magnitude to include.", "magnitude")),
             ("Were there any earthquakes stronger than magnitude {magnitude} in {region} recently?",
              "List recent earthquakes above {magnitude} in {region}.")),
    ToolSpec("search_github_issues",
             "Search the issues of a GitHub repository. Filters by label and state and returns "
             "titles, numbers and authors.",
             (P("repository", "string", "The repository as owner/name.", "repo"),
              P("label", "string", "Only issues with this label.", "label"),
              P("state", "string", "open, closed or all. Defaults to open.")),
             ("Show me the open '{label}' issues in {repo} on GitHub.",
              "List GitHub issues labeled '{label}' in the {repo} repository.")),
    ToolSpec("suggest_wine_pairing",
             "Suggest wines that go well with a dish. Returns grape varieties, regions and a "
             "sentence on why each one fits.",
             (P("dish", "string", "The dish being served.", "dish"),
              P("budget", "number", "Highest price per bottle. Optional.")),
             ("Which wine goes well with {dish}?",
              "Suggest a wine pairing for {dish}.")),
    ToolSpec("find_hiking_trails",
             "Find hiking trails in a national park. Filters by length and returns difficulty, "
             "elevation gain and trail conditions.",
             (P("park", "string", "The national park.", "park"),
              P("max_length_km", "number", "Longest trail length in kilometers.", "km"),
              P("dog_friendly", "boolean", "Only trails that allow dogs.")),
             ("Find hiking trails in {park} that are shorter than {km} km.",
              "What hikes of at most {km} km are there in {park}?")),
    ToolSpec("get_sunrise_sunset",
             "Get the sunrise and sunset times of a city on a given date. Also returns the "
             "length of the day and the golden hour.",
             (P("city", "string", "The city.", "city"),
              P("date", "string", "The date as YYYY-MM-DD.", "date")),
             ("When does the sun rise and set in {city} on {date}?",
              "Give me sunrise and sunset times for {city} on {date}.")),
)
